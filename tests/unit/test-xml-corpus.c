/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-xml-corpus.c - every case of tests/xml: the XML a client sends, and
 * either the exact device_add arguments hostdevd sends for it or the error
 * it answers with.  tests/libvirt checks the same files against libvirt.
 *
 * For a valid case the live XML must also survive hostdevd's own round
 * trip (format, parse as live XML, format again) and still name the same
 * host device: the journal and detach-device depend on it.
 */
#include "corpus-case.h"
#include "hostdev.h"
#include "hostdevd-error.h"

#include <string.h>

/* The issue asks for at least this many cases. */
#define MIN_CASES 60

typedef struct {
  char *name;
  char *xml_path;
  char *json_path;
} Case;

static void
case_free(Case *c)
{
  g_free(c->name);
  g_free(c->xml_path);
  g_free(c->json_path);
  g_free(c);
}

static JsonObject *
load_spec(const char *path)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) error = NULL;
  JsonNode *root;

  if (!json_parser_load_from_file(parser, path, &error))
    g_error("%s: %s", path, error->message);
  root = json_parser_get_root(parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
    g_error("%s: not a JSON object", path);
  return json_object_ref(json_node_get_object(root));
}

static char *
array_to_string(JsonArray *array)
{
  g_autoptr(JsonNode) node = json_node_init_array(json_node_alloc(), array);
  return corpus_json_to_string(node);
}

static void
check_valid(const Case *c, const char *xml, gsize length, CorpusResult *result,
            JsonObject *spec)
{
  g_autofree char *got = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) original = NULL;
  g_autoptr(Hostdev) back = NULL;
  g_autofree char *again = NULL;

  if (result->error != NULL)
    g_error("%s: expected device_add arguments, got %s: %s", c->name,
            hostdevd_error_class(result->error), result->error->message);

  got = array_to_string(result->args);
  expected = array_to_string(json_object_get_array_member(spec, "args"));
  if (strcmp(got, expected) != 0)
    g_error("%s: device_add arguments differ\n  expected %s\n  got      %s",
            c->name, expected, got);

  back = hostdev_parse_live_xml(result->live_xml, strlen(result->live_xml), &error);
  if (back == NULL)
    g_error("%s: the live XML does not parse back: %s\n%s", c->name, error->message,
            result->live_xml);
  again = hostdev_format_xml(back);
  g_assert_cmpstr(again, ==, result->live_xml);
  original = hostdev_parse_xml(xml, length, &error);
  g_assert_no_error(error);
  g_assert_true(hostdev_source_matches(original, back));
  g_test_message("%s", result->live_xml);
}

static void
check_error(const Case *c, CorpusResult *result, JsonObject *spec)
{
  JsonObject *want = json_object_get_object_member(spec, "error");
  const char *class_name = json_object_get_string_member(want, "class");
  const char *contains = json_object_get_string_member(want, "contains");

  if (result->error == NULL) {
    g_autofree char *got = array_to_string(result->args);
    g_error("%s: expected %s \"%s\", got device_add arguments %s",
            c->name, class_name, contains, got);
  }
  if (result->error->domain != HOSTDEVD_ERROR ||
      strcmp(hostdevd_error_class(result->error), class_name) != 0 ||
      strstr(result->error->message, contains) == NULL)
    g_error("%s: expected %s containing \"%s\", got %s: %s", c->name, class_name,
            contains, hostdevd_error_class(result->error), result->error->message);
  g_test_message("%s: %s", hostdevd_error_class(result->error), result->error->message);
}

static void
test_case(gconstpointer data)
{
  const Case *c = data;
  g_autoptr(JsonObject) spec = load_spec(c->json_path);
  g_autofree char *xml = NULL;
  gsize length = 0;
  g_autoptr(GError) error = NULL;
  g_autoptr(CorpusResult) result = NULL;

  if (!g_file_get_contents(c->xml_path, &xml, &length, &error))
    g_error("%s", error->message);
  result = corpus_case_run(xml, length, spec);
  g_assert_true((result->args == NULL) != (result->error == NULL));

  if (json_object_has_member(spec, "args"))
    check_valid(c, xml, length, result, spec);
  else if (json_object_has_member(spec, "error"))
    check_error(c, result, spec);
  else
    g_error("%s: the case has neither \"args\" nor \"error\"", c->json_path);
}

static gint
compare_cases(gconstpointer a, gconstpointer b)
{
  return strcmp((*(Case *const *)a)->name, (*(Case *const *)b)->name);
}

static GPtrArray *
list_cases(const char *dir)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) handle = g_dir_open(dir, 0, &error);
  GPtrArray *cases = g_ptr_array_new_with_free_func((GDestroyNotify)case_free);
  const char *entry;

  if (handle == NULL)
    g_error("%s", error->message);
  while ((entry = g_dir_read_name(handle)) != NULL) {
    Case *c;

    if (!g_str_has_suffix(entry, ".json"))
      continue;
    c = g_new0(Case, 1);
    c->name = g_strndup(entry, strlen(entry) - strlen(".json"));
    c->json_path = g_build_filename(dir, entry, NULL);
    c->xml_path = g_strdup_printf("%s/%s.xml", dir, c->name);
    if (!g_file_test(c->xml_path, G_FILE_TEST_EXISTS))
      g_error("%s has no %s", c->json_path, c->xml_path);
    g_ptr_array_add(cases, c);
  }
  g_ptr_array_sort(cases, compare_cases);
  return cases;
}

int
main(int argc, char **argv)
{
  g_autofree char *dir = NULL;
  g_autoptr(GPtrArray) cases = NULL;
  int status;

  g_test_init(&argc, &argv, NULL);
  dir = g_test_build_filename(G_TEST_DIST, "..", "xml", NULL);
  cases = list_cases(dir);
  if (cases->len < MIN_CASES)
    g_error("%s has %u cases; the corpus must keep at least %d", dir, cases->len,
            MIN_CASES);

  for (guint i = 0; i < cases->len; i++) {
    Case *c = g_ptr_array_index(cases, i);
    g_autofree char *path = g_strdup_printf("/xml-corpus/%s", c->name);
    g_test_add_data_func(path, c, test_case);
  }
  status = g_test_run();
  return status;
}
