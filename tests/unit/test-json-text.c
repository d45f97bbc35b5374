/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "json-text.h"

#include <string.h>

/* What json-glib's own generator writes for @node, compact. */
static char *
generated(JsonNode *node)
{
  g_autoptr(JsonGenerator) generator = json_generator_new();
  json_generator_set_root(generator, node);
  return json_generator_to_data(generator, NULL);
}

static JsonNode *
parsed(const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) error = NULL;
  g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
  return json_node_copy(json_parser_get_root(parser));
}

/* The same text as json-glib's generator, byte for byte: readers that compare
 * a reply or a journal record as text see no difference. */
static void
test_as_json_glib_writes_it(void)
{
  static const char *const documents[] = {
    "{}", "[]", "null", "0", "-1", "9223372036854775807", "-9223372036854775808",
    "true", "1.5", "0.1", "-2.5e-07", "1e+300",
    "{\"b\":1,\"a\":[true,false,null,{\"z\":\"\"}],\"c\":{}}",
    "[\"plain\",\"quote \\\" backslash \\\\ slash /\",\"\\b\\f\\n\\r\\t\",\"\\u0001\\u001e\"]",
    "{\"xml\":\"<hostdev mode='subsystem' type='usb'>\\n  <source/>\\n</hostdev>\\n\"}",
    "{\"utf-8\":\"gr\\u00fc\\u00dfe \\u2603 \\ud83d\\ude00\"}",
    "{\"key \\\"q\\\"\\n\":[1,[2,[3,[]]]]}",
  };

  for (gsize i = 0; i < G_N_ELEMENTS(documents); i++) {
    g_autoptr(JsonNode) node = parsed(documents[i]);
    g_autofree char *expected = generated(node);
    gsize length = 0;
    g_autofree char *text = json_text_from_node(node, &length);
    g_assert_cmpstr(text, ==, expected);
    g_assert_cmpuint(length, ==, strlen(expected));
  }
}

/*
 * Where json-glib 1.6 strays from RFC 8259, the text follows the RFC: it
 * escapes U+001F (json-glib writes it raw, which is not JSON) and leaves
 * U+007F as it is (json-glib escapes it; either is JSON).
 */
static void
test_control_characters(void)
{
  g_autoptr(JsonNode) node = json_node_init_string(json_node_alloc(), "a\x1f" "b\x7f" "c");
  g_autofree char *text = json_text_from_node(node, NULL);
  g_assert_cmpstr(text, ==, "\"a\\u001fb\x7f" "c\"");
  g_autoptr(JsonNode) back = parsed(text);
  g_assert_cmpstr(json_node_get_string(back), ==, "a\x1f" "b\x7f" "c");
}

/* Members keep the order they were set in, also after one is replaced. */
static void
test_member_order(void)
{
  g_autoptr(JsonObject) object = json_object_new();
  json_object_set_int_member(object, "z", 1);
  json_object_set_string_member(object, "a", "x");
  json_object_set_null_member(object, "m");
  json_object_set_int_member(object, "z", 2);
  g_autofree char *text = json_text_from_object(object, NULL);
  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), object);
  g_autofree char *expected = generated(node);
  g_assert_cmpstr(text, ==, expected);
}

/* An object written member by member is the text of the same object built as a tree. */
static void
test_members_without_a_tree(void)
{
  const char *const ids[] = { "zpci0", "host\"dev\n0", NULL };
  const char *const none[] = { NULL };
  g_autoptr(JsonObject) inner = json_object_new();
  g_autoptr(JsonObject) tree = json_object_new();
  g_autoptr(GString) out = g_string_new(NULL);

  json_object_set_string_member(inner, "driver", "e1000e");
  json_object_set_null_member(inner, "override");
  json_object_set_string_member(tree, "alias", "hostdev0");
  json_object_set_string_member(tree, "step", NULL);
  json_object_set_string_member(tree, "xml", "<hostdev mode='subsystem'>\n\t\x01</hostdev>\n");
  JsonArray *array = json_array_new();
  for (guint i = 0; ids[i]; i++)
    json_array_add_string_element(array, ids[i]);
  json_object_set_array_member(tree, "qemu-ids", array);
  json_object_set_array_member(tree, "empty", json_array_new());
  json_object_set_array_member(tree, "absent", json_array_new());
  json_object_set_object_member(tree, "host", json_object_ref(inner));
  JsonObject *nested = json_object_new();
  json_object_set_int_member(nested, "pid", G_MAXINT64);
  json_object_set_int_member(nested, "start-time", -1);
  json_object_set_object_member(tree, "qemu", nested);
  json_object_set_object_member(tree, "{", json_object_new());
  json_object_set_int_member(tree, "version", 2);
  json_object_set_boolean_member(tree, "managed", TRUE);
  json_object_set_boolean_member(tree, "probed", FALSE);
  json_object_set_object_member(tree, "raw", json_object_ref(inner));
  JsonArray *claims = json_array_new();
  json_array_add_string_element(claims, "pci_0000_01_00_0");
  json_array_add_string_element(claims, "pci_group_12");
  json_object_set_array_member(tree, "claims", claims);
  JsonArray *companions = json_array_new();
  for (gint64 n = 1; n <= 2; n++) {
    JsonObject *companion = json_object_new();
    json_object_set_int_member(companion, "n", n);
    json_array_add_object_element(companions, companion);
  }
  json_object_set_array_member(tree, "companions", companions);
  json_object_set_array_member(tree, "no-companions", json_array_new());
  json_object_set_string_member(tree, "execute", "device_add");
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(keys, g_strdup("pci_0000_01_00_0"));
  g_ptr_array_add(keys, g_strdup("pci_group_12"));
  g_autofree char *inner_text = json_text_from_object(inner, NULL);

  json_text_object_begin(out);
  json_text_member_string(out, "alias", "hostdev0");
  json_text_member_string(out, "step", NULL);
  json_text_member_string(out, "xml", "<hostdev mode='subsystem'>\n\t\x01</hostdev>\n");
  json_text_member_strv(out, "qemu-ids", ids);
  json_text_member_strv(out, "empty", none);
  json_text_member_strv(out, "absent", NULL);
  json_text_member_object(out, "host", inner);
  json_text_member_name(out, "qemu");
  json_text_object_begin(out);
  json_text_member_int(out, "pid", G_MAXINT64);
  json_text_member_int(out, "start-time", -1);
  json_text_object_end(out);
  json_text_member_name(out, "{");   /* a name that looks like an object's start */
  json_text_object_begin(out);
  json_text_object_end(out);
  json_text_member_int(out, "version", 2);
  json_text_member_bool(out, "managed", TRUE);
  json_text_member_bool(out, "probed", FALSE);
  json_text_member_raw(out, "raw", inner_text);
  json_text_member_string_array(out, "claims", keys);
  json_text_member_name(out, "companions");
  json_text_array_begin(out);
  for (gint64 n = 1; n <= 2; n++) {
    json_text_element_begin(out);
    json_text_object_begin(out);
    json_text_member_int(out, "n", n);
    json_text_object_end(out);
  }
  json_text_array_end(out);
  json_text_member_name(out, "no-companions");
  json_text_array_begin(out);
  json_text_array_end(out);
  json_text_member_name(out, "execute");
  json_text_value_string(out, "device_add");
  json_text_object_end(out);

  g_autofree char *expected = json_text_from_object(tree, NULL);
  g_assert_cmpstr(out->str, ==, expected);
  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), tree);
  g_autofree char *by_json_glib = generated(node);
  g_assert_cmpstr(out->str, ==, by_json_glib);

  /* read back: the same tree */
  g_autoptr(JsonObject) back = json_text_parse_object(out->str);
  g_autofree char *again = json_text_from_object(back, NULL);
  g_assert_cmpstr(again, ==, out->str);
  g_assert_null(json_text_parse_object("[1]"));
  g_assert_null(json_text_parse_object("{"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/json-text/as-json-glib-writes-it", test_as_json_glib_writes_it);
  g_test_add_func("/json-text/control-characters", test_control_characters);
  g_test_add_func("/json-text/member-order", test_member_order);
  g_test_add_func("/json-text/members-without-a-tree", test_members_without_a_tree);
  return g_test_run();
}
