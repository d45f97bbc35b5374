/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "json-flat.h"
#include "json-text.h"

#include <string.h>

/* Return: (transfer full) (nullable): json-glib's tree of @text, as the control socket parses it. */
static JsonNode *
json_glib_read(const char *text, gsize length)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  if (!json_parser_load_from_data(parser, text, (gssize)length, NULL) ||
      json_parser_get_root(parser) == NULL)
    return NULL;
  return json_node_ref(json_parser_get_root(parser));
}

/* Return: whether @a and @b are the same tree: members in the same order, ints as ints. */
static gboolean
same_tree(JsonNode *a, JsonNode *b)
{
  g_autofree char *text_a = json_text_from_node(a, NULL);
  g_autofree char *text_b = json_text_from_node(b, NULL);
  return strcmp(text_a, text_b) == 0 && json_node_equal(a, b);
}

/* What the reader takes: the tree is json-glib's. */
static void
test_accepted_as_json_glib(void)
{
  static const char *const documents[] = {
    "{}",
    " \t\r\n{ } \n",
    "{\"execute\":\"list-devices\"}",
    "{\"execute\": \"attach-device\", \"arguments\": {\"xml\": \"<hostdev mode='subsystem' "
    "type='usb' managed='yes'>\\n  <source>\\n    <vendor id='0x1d6b'/>\\n  </source>\\n"
    "</hostdev>\\n\"}, \"id\": 7}",
    "{\"id\":\"a string id\",\"execute\":\"x\",\"arguments\":{}}",
    "{\"return\": {}, \"id\": 12}",
    "{\"timestamp\": {\"seconds\": 1796555771, \"microseconds\": 820528}, \"event\": "
    "\"DEVICE_DELETED\", \"data\": {\"path\": \"/machine/peripheral/hostdev0\", \"device\": "
    "\"hostdev0\"}}",
    "{\"id\": 13, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device "
    "'/machine/peripheral/hostdev0' not found\"}}",
    "{\"a\":true,\"b\":false,\"c\":null,\"d\":-42,\"e\":0,\"f\":999999999999999999}",
    "{\"escapes\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\",\"utf-8\":\"gr\xc3\xbc\xc3\x9f"
    "e \xe2\x98\x83 \xf0\x9f\x98\x80\",\"del\":\"\x7f\"}",
    "{\"one\":{\"two\":{\"three\":\"deep as the reader goes\"}}}",
    "{\"b\":1,\"a\":2,\"c\":{\"z\":\"\",\"y\":\"\"}}",
  };

  for (gsize i = 0; i < G_N_ELEMENTS(documents); i++) {
    gsize length = strlen(documents[i]);
    g_autoptr(JsonNode) flat = json_flat_read(documents[i], length);
    g_autoptr(JsonNode) full = json_glib_read(documents[i], length);
    g_autofree char *shown = g_strescape(documents[i], NULL);
    g_test_message("%s", shown);
    g_assert_nonnull(flat);
    g_assert_nonnull(full);
    g_assert_true(same_tree(flat, full));
    g_assert_false(json_node_is_immutable(flat));
  }
}

/* What it declines, for json-glib to read (and to word the error of). */
static void
test_declined(void)
{
  static const struct {
    const char *text;
    gsize length;   /* 0: strlen() */
  } documents[] = {
    { "" }, { "   " }, { "[]" }, { "\"a string\"" }, { "42" }, { "null" },
    { "{\"a\":[1]}" },                          /* arrays: json-glib's */
    { "{\"a\":1.5}" }, { "{\"a\":1e3}" }, { "{\"a\":1E3}" }, { "{\"a\":-0}" },
    { "{\"a\":01}" }, { "{\"a\":+1}" }, { "{\"a\":-}" }, { "{\"a\":0x10}" },
    { "{\"a\":1234567890123456789}" },          /* 19 digits */
    { "{\"a\":-9999999999999999999}" },        /* would overflow on the way */
    { "{\"a\":\"\\u0041\"}" },                   /* \u escapes: json-glib's */
    { "{\"a\":\"\\x\"}" }, { "{\"a\":\"\\'\"}" },
    { "{\"a\":\"tab\there\"}" },                /* a raw control character */
    { "{\"a\":1,\"a\":2}" },                    /* a repeated member */
    { "{\"\":1}" },                             /* an empty name */
    { "{\"a\":1,}" }, { "{,}" }, { "{\"a\" 1}" }, { "{\"a\":}" }, { "{a:1}" },
    { "{'a':1}" }, { "{\"a\":tru}" }, { "{\"a\":True}" }, { "{\"a\":nul}" },
    { "{\"a\":1} x" }, { "{\"a\":1}{}" }, { "{\"a\":1" }, { "{\"a\":\"open}" },
    { "{\"one\":{\"two\":{\"three\":{\"four\":1}}}}" },   /* deeper than it goes */
    { "{\"a\":\"\xc3\x28\"}" },                 /* not UTF-8 */
    { "{\"a\":\"\xed\xa0\x80\"}" },             /* an encoded surrogate */
    { "{\"a\":\"nul\0here\"}", 16 },
    { "{\"a\":1}\0", 8 },
    { "\xef\xbb\xbf{}" },                       /* a byte-order mark */
    { "{\"a\":1}\f" }, { "\v{}" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(documents); i++) {
    gsize length = documents[i].length ? documents[i].length : strlen(documents[i].text);
    /* escaped: TAP lines must stay UTF-8 */
    g_autofree char *shown = g_strescape(documents[i].text, NULL);
    g_test_message("%zu: %s", i, shown);
    g_assert_null(json_flat_read(documents[i].text, length));
  }
  g_assert_null(json_flat_read(NULL, 0));
}

/*
 * Lines near the everyday ones, bytes changed at random (a fixed seed): what
 * the reader takes, json-glib takes too, and builds the same tree of.
 */
static void
test_mutations_agree_with_json_glib(void)
{
  static const char *const seeds[] = {
    "{\"execute\": \"attach-device\", \"arguments\": {\"xml\": \"<hostdev/>\\n\"}, \"id\": 7}",
    "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"E\", \"data\": {}}",
    "{\"a\":true,\"b\":false,\"c\":null,\"d\":-42,\"e\":\"\\\"\\\\\\/\\n\"}",
  };
  static const char alphabet[] = "{}[]\":,\\ \t\n-0123456789.eEtrufalsn\x7f\xc3\xbc\x01u/bf";
  GRand *rand = g_rand_new_with_seed(14);
  guint accepted = 0;

  for (guint round = 0; round < 60000; round++) {
    const char *seed = seeds[round % G_N_ELEMENTS(seeds)];
    g_autoptr(GString) text = g_string_new(seed);
    guint changes = (guint)g_rand_int_range(rand, 1, 4);
    for (guint c = 0; c < changes && text->len > 0; c++) {
      gsize at = (gsize)g_rand_int_range(rand, 0, (gint32)text->len);
      char byte = alphabet[g_rand_int_range(rand, 0, sizeof alphabet - 1)];
      switch (g_rand_int_range(rand, 0, 3)) {
      case 0: text->str[at] = byte; break;
      case 1: g_string_insert_c(text, (gssize)at, byte); break;
      default: g_string_erase(text, (gssize)at, 1); break;
      }
    }
    g_autoptr(JsonNode) flat = json_flat_read(text->str, text->len);
    if (flat == NULL)
      continue;
    accepted++;
    g_autoptr(JsonNode) full = json_glib_read(text->str, text->len);
    if (full == NULL || !same_tree(flat, full))
      g_error("json_flat_read() and json-glib disagree on: %s", text->str);
  }
  g_rand_free(rand);
  /* the mutations must exercise both sides */
  g_test_message("%u of 60000 taken", accepted);
  g_assert_cmpuint(accepted, >, 1000);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/json-flat/accepted-as-json-glib", test_accepted_as_json_glib);
  g_test_add_func("/json-flat/declined", test_declined);
  g_test_add_func("/json-flat/mutations-agree-with-json-glib", test_mutations_agree_with_json_glib);
  return g_test_run();
}
