/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "json-guard.h"

#include <string.h>

typedef struct {
  const char *text;
  JsonGuardResult expected;
} GuardCase;

static const GuardCase guard_cases[] = {
  { "", JSON_GUARD_OK },
  { "{\"a\": [1, 2.5e-3, true, null, \"x\"]}", JSON_GUARD_OK },
  { "{\"a\": \"[[[[ {{{{ in a string \\\" ]]\"}", JSON_GUARD_OK },
  { "[[[[1]]]]", JSON_GUARD_OK },
  { "[[[[[1]]]]]", JSON_GUARD_TOO_DEEP },
  { "{\"a\": {\"b\": {\"c\": {\"d\": {}}}}}", JSON_GUARD_TOO_DEEP },
  { "{'a': 1}", JSON_GUARD_NOT_JSON },
  { "{\"a\": 1 /* [[[[[[ */}", JSON_GUARD_NOT_JSON },
  { "{} {}", JSON_GUARD_TRAILING },
  { "[1] x", JSON_GUARD_TRAILING },
  { "{}  \r\n", JSON_GUARD_OK },
  { "\xff", JSON_GUARD_NOT_UTF8 },
};

static void
test_check(void)
{
  for (gsize i = 0; i < G_N_ELEMENTS(guard_cases); i++) {
    const GuardCase *c = &guard_cases[i];
    g_assert_cmpint(json_guard_check(c->text, strlen(c->text), 4), ==, c->expected);
  }
  g_assert_cmpint(json_guard_check("{\"a\":\0}", 7, 4), ==, JSON_GUARD_NUL);
}

static void
test_deep_nesting_is_linear(void)
{
  /* the input that would exhaust json-glib's stack */
  gsize n = 1000000;
  g_autofree char *deep = g_malloc(n);
  memset(deep, '[', n);
  g_assert_cmpint(json_guard_check(deep, n, 1024), ==, JSON_GUARD_TOO_DEEP);
}

static void
test_strings_are_utf8(void)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  g_assert_true(json_parser_load_from_data(parser, "{\"a\": [\"\\u00e9\", {\"b\": 1}]}", -1,
                                           NULL));
  g_assert_true(json_guard_strings_are_utf8(json_parser_get_root(parser)));
  /* a high surrogate followed by another escape decodes to bytes that are not UTF-8 */
  g_assert_true(json_parser_load_from_data(parser, "{\"a\": \"\\ud83d\\t\"}", -1, NULL));
  g_assert_false(json_guard_strings_are_utf8(json_parser_get_root(parser)));
  g_assert_true(json_parser_load_from_data(parser, "[{\"\\ud83d\\t\": 1}]", -1, NULL));
  g_assert_false(json_guard_strings_are_utf8(json_parser_get_root(parser)));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/json-guard/check", test_check);
  g_test_add_func("/json-guard/deep-nesting", test_deep_nesting_is_linear);
  g_test_add_func("/json-guard/strings-utf8", test_strings_are_utf8);
  return g_test_run();
}
