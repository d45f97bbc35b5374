/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdevd-plan - print what hostdevd makes of every case of the XML corpus
 *
 *   hostdevd-plan DIR
 *
 * reads DIR/NAME.xml with DIR/NAME.json (see tests/unit/corpus-case.h) and
 * prints one JSON object: {"NAME": {"args": [...], "live": "<hostdev…"},
 * "OTHER": {"error": {"class": "...", "message": "..."}}, ...}, for
 * compare-libvirt.py to hold against libvirt.
 */
#include "corpus-case.h"
#include "hostdevd-error.h"

#include <stdio.h>
#include <string.h>

static JsonObject *
load_spec(const char *path, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  JsonNode *root;

  if (!json_parser_load_from_file(parser, path, error))
    return NULL;
  root = json_parser_get_root(parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: not a JSON object", path);
    return NULL;
  }
  return json_object_ref(json_node_get_object(root));
}

static JsonObject *
run_case(const char *dir, const char *name, GError **error)
{
  g_autofree char *json_path = g_strdup_printf("%s/%s.json", dir, name);
  g_autofree char *xml_path = g_strdup_printf("%s/%s.xml", dir, name);
  g_autoptr(JsonObject) spec = load_spec(json_path, error);
  g_autofree char *xml = NULL;
  gsize length = 0;
  g_autoptr(CorpusResult) result = NULL;
  JsonObject *out;

  if (spec == NULL || !g_file_get_contents(xml_path, &xml, &length, error))
    return NULL;
  result = corpus_case_run(xml, length, spec);
  out = json_object_new();
  if (result->error != NULL) {
    JsonObject *failure = json_object_new();
    json_object_set_string_member(failure, "class", hostdevd_error_class(result->error));
    json_object_set_string_member(failure, "message", result->error->message);
    json_object_set_object_member(out, "error", failure);
  } else {
    json_object_set_array_member(out, "args", json_array_ref(result->args));
    json_object_set_string_member(out, "live", result->live_xml);
  }
  return out;
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) dir = NULL;
  g_autoptr(JsonObject) all = json_object_new();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;
  const char *entry;

  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
    return 2;
  }
  dir = g_dir_open(argv[1], 0, &error);
  if (dir == NULL) {
    fprintf(stderr, "%s\n", error->message);
    return 1;
  }
  while ((entry = g_dir_read_name(dir)) != NULL) {
    g_autofree char *name = NULL;
    JsonObject *result;

    if (!g_str_has_suffix(entry, ".json"))
      continue;
    name = g_strndup(entry, strlen(entry) - strlen(".json"));
    result = run_case(argv[1], name, &error);
    if (result == NULL) {
      fprintf(stderr, "%s: %s\n", name, error->message);
      return 1;
    }
    json_object_set_object_member(all, name, result);
  }
  root = json_node_init_object(json_node_alloc(), all);
  text = corpus_json_to_string(root);
  puts(text);
  return 0;
}
