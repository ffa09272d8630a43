/* SPDX-License-Identifier: MIT */
/* Unit tests for base/config: the "name = value" parser and the private-file check. */
#include <string.h>
#include <sys/stat.h>

#include "base/config.h"
#include "check.h"

static struct config *
parse_ok(const char *text)
{
    struct config *c = NULL;
    struct err err;

    err_clear(&err);
    CHECK_OK(config_parse(&c, text, strlen(text), "f.conf", &err), &err);
    return c;
}

static void
expect_fail(const char *text, const char *msg)
{
    struct config *c = (struct config *)1;
    struct err err;

    CHECK_FAIL(config_parse(&c, text, strlen(text), "f.conf", &err), &err, ERR_CONFIG, msg);
    CHECK(c == NULL);
}

static void
test_config_comments_blank_lines_and_whitespace(void)
{
    struct config *c = parse_ok("# comment\n"
                                "\n"
                                "   \t\n"
                                "  # indented comment\n"
                                "repo=s3://b/p\n"
                                "  s3-region   =\t eu-west-1  \t\n"
                                "compress =\n"
                                "s3-endpoint = http://h:1/x # not a comment\n");

    if (!c)
        return;
    CHECK_INT(c->n, 4);
    CHECK_STR(c->entries[0].name, "repo");
    CHECK_STR(c->entries[0].value, "s3://b/p");
    CHECK_INT(c->entries[0].line, 5);
    CHECK_STR(c->entries[1].name, "s3-region");
    CHECK_STR(c->entries[1].value, "eu-west-1");
    CHECK_INT(c->entries[1].line, 6);
    CHECK_STR(c->entries[2].value, "");
    CHECK_STR(c->entries[3].value, "http://h:1/x # not a comment");
    config_free(c);
}

static void
test_config_quotes(void)
{
    struct config *c = parse_ok("a = \"two  words \"\n"
                                "b = 'single \\n \" quoted'   # trailing comment\n"
                                "c = \"esc \\\" and \\\\ and \\n\"\n"
                                "d = \"\"\n"
                                "e = x\"y\"\n"
                                "f = \"#hash\"\n");

    if (!c)
        return;
    CHECK_INT(c->n, 6);
    CHECK_STR(c->entries[0].value, "two  words ");
    CHECK_STR(c->entries[1].value, "single \\n \" quoted");
    CHECK_STR(c->entries[2].value, "esc \" and \\ and \\n");
    CHECK_STR(c->entries[3].value, "");
    CHECK_STR(c->entries[4].value, "x\"y\"");
    CHECK_STR(c->entries[5].value, "#hash");
    config_free(c);
}

static void
test_config_crlf_and_no_final_newline(void)
{
    struct config *c = parse_ok("a = 1\r\nb = \"2\"\r\nc = 3");

    if (!c)
        return;
    CHECK_INT(c->n, 3);
    CHECK_STR(c->entries[0].value, "1");
    CHECK_STR(c->entries[1].value, "2");
    CHECK_STR(c->entries[2].value, "3");
    CHECK_INT(c->entries[2].line, 3);
    config_free(c);
}

static void
test_config_empty_file(void)
{
    struct config *c = parse_ok("");

    if (!c)
        return;
    CHECK_INT(c->n, 0);
    config_free(c);
}

static void
test_config_bad_lines_name_their_line(void)
{
    expect_fail("a = 1\nno equals sign\n",
                "syntax error in \"f.conf\" line 2: expected \"name = value\"");
    expect_fail("# c\n\n= value\n", "syntax error in \"f.conf\" line 3: expected \"name = value\"");
    expect_fail("a b = c\n", "syntax error in \"f.conf\" line 1: expected \"name = value\"");
    expect_fail(
        "\n\nRepo = x\n",
        "invalid option name in \"f.conf\" line 3: use lower case letters, digits and \"-\"");
    expect_fail(
        "s3_region = x\n",
        "invalid option name in \"f.conf\" line 1: use lower case letters, digits and \"-\"");
    expect_fail("[Main]\nrepo = x\n", "invalid section in \"f.conf\" line 1: expected "
                                      "\"[program]\", e.g. \"[wal-push]\"");
    expect_fail("a = 1\n[wal-push] x\n", "invalid section in \"f.conf\" line 2: expected "
                                         "\"[program]\", e.g. \"[wal-push]\"");
    expect_fail("[]\n", "invalid section in \"f.conf\" line 1: expected \"[program]\", e.g. "
                        "\"[wal-push]\"");
    expect_fail("[wal-push]\na = 1\na = 2\n",
                "option \"a\" is set twice in \"f.conf\" (lines 2 and 3)");
    expect_fail("a = \"open\n", "unterminated quote in \"f.conf\" line 1");
    expect_fail("a = 'x' 'y'\n", "unexpected text after closing quote in \"f.conf\" line 1");
    expect_fail("a = \"x\" y\n", "unexpected text after closing quote in \"f.conf\" line 1");
}

static void
test_config_sections(void)
{
    struct config *c = NULL;
    struct err err;
    const char *text = "a = 1\n[wal-push]\na = 2\n  [wal-fetch]  \nb = 3\n";

    CHECK_OK(config_parse(&c, text, strlen(text), "f.conf", &err), &err);
    CHECK_INT(c->n, 3);
    CHECK(c->entries[0].section == NULL);
    CHECK_STR(c->entries[1].section, "wal-push");
    CHECK_STR(c->entries[1].value, "2");
    CHECK_STR(c->entries[2].section, "wal-fetch");
    CHECK_INT(c->entries[2].line, 5);
    config_free(c);
}

static void
test_config_duplicate_is_an_error(void)
{
    expect_fail("repo = a\n# x\nrepo = b\n",
                "option \"repo\" is set twice in \"f.conf\" (lines 1 and 3)");
}

static void
test_config_nul_byte(void)
{
    struct config *c = NULL;
    struct err err;
    static const char text[] = "a = 1\nb = x\0y\n";

    CHECK_FAIL(config_parse(&c, text, sizeof(text) - 1, "f.conf", &err), &err, ERR_CONFIG,
               "NUL byte in \"f.conf\" line 2");
}

static void
test_config_check_private(void)
{
    struct stat st;
    struct err err;

    memset(&st, 0, sizeof(st));
    st.st_mode = S_IFREG | 0600;
    err_clear(&err);
    CHECK_OK(config_check_private(&st, "/x/f.conf", "config file", &err), &err);
    st.st_mode = S_IFREG | 0400;
    CHECK_OK(config_check_private(&st, "/x/f.conf", "config file", &err), &err);
    st.st_mode = S_IFREG | 0644;
    CHECK_FAIL(config_check_private(&st, "/x/f.conf", "config file", &err), &err, ERR_CONFIG,
               "config file \"/x/f.conf\" holds secrets and must not be accessible by group or "
               "others (mode 0644): run chmod 600 \"/x/f.conf\"");
    st.st_mode = S_IFREG | 0620;
    CHECK_FAIL(config_check_private(&st, "k", "key file", &err), &err, ERR_CONFIG,
               "key file \"k\" holds secrets and must not be accessible by group or others "
               "(mode 0620): run chmod 600 \"k\"");
}

int
main(void)
{
    RUN(test_config_comments_blank_lines_and_whitespace);
    RUN(test_config_quotes);
    RUN(test_config_crlf_and_no_final_newline);
    RUN(test_config_empty_file);
    RUN(test_config_bad_lines_name_their_line);
    RUN(test_config_duplicate_is_an_error);
    RUN(test_config_sections);
    RUN(test_config_nul_byte);
    RUN(test_config_check_private);
    return check_done();
}
