/* SPDX-License-Identifier: MIT */
/* Unit tests for format/tar: the safety checks on tar entries. */
#include <string.h>

#include "check.h"
#include "format/tar.h"

static void
test_path_normalised(void)
{
    static const char *const cases[][2] = {
        {"base/1/1259", "base/1/1259"}, {"./base/1/", "base/1"}, {"a//b/./c/", "a/b/c"},
        {"pg_wal/", "pg_wal"},          {"./././x", "x"},        {"..x/y..", "..x/y.."},
        {"a/.../b", "a/.../b"},
    };
    char out[TAR_PATH_MAX];
    struct err err;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_OK(tar_path_check(out, cases[i][0], &err), &err);
        CHECK_STR(out, cases[i][1]);
    }
}

static void
test_path_refused(void)
{
    char out[TAR_PATH_MAX];
    char longname[TAR_PATH_MAX + 10];
    struct err err;

    CHECK_FAIL(tar_path_check(out, "../x", &err), &err, ERR_CORRUPT,
               "tar entry \"../x\" has a \"..\" component");
    CHECK_FAIL(tar_path_check(out, "a/b/../../../x", &err), &err, ERR_CORRUPT,
               "tar entry \"a/b/../../../x\" has a \"..\" component");
    CHECK_FAIL(tar_path_check(out, "a/..", &err), &err, ERR_CORRUPT,
               "tar entry \"a/..\" has a \"..\" component");
    CHECK_FAIL(tar_path_check(out, "/etc/x", &err), &err, ERR_CORRUPT,
               "tar entry \"/etc/x\" has an absolute path");
    CHECK_FAIL(tar_path_check(out, "", &err), &err, ERR_CORRUPT, "tar entry has an empty name");
    CHECK_FAIL(tar_path_check(out, "./", &err), &err, ERR_CORRUPT,
               "tar entry \"./\" names the top directory");
    CHECK_FAIL(tar_path_check(out, ".", &err), &err, ERR_CORRUPT,
               "tar entry \".\" names the top directory");
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    CHECK_FAIL(tar_path_check(out, longname, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strstr(err.msg, "has a name too long") != NULL);
}

static void
test_symlinks(void)
{
    struct err err;

    CHECK_OK(tar_symlink_check("a/b", "../c", &err), &err);
    CHECK_OK(tar_symlink_check("a/b/c", "../../d/e", &err), &err);
    CHECK_OK(tar_symlink_check("x", ".", &err), &err);
    CHECK_OK(tar_symlink_check("x", "./y/./z", &err), &err);
    CHECK_FAIL(tar_symlink_check("a/b", "../../c", &err), &err, ERR_CORRUPT,
               "symlink \"a/b\" points outside the directory: \"../../c\"");
    CHECK_FAIL(tar_symlink_check("x", "..", &err), &err, ERR_CORRUPT,
               "symlink \"x\" points outside the directory: \"..\"");
    CHECK_FAIL(tar_symlink_check("pg_wal", "/var/lib/wal", &err), &err, ERR_CORRUPT,
               "symlink \"pg_wal\" points outside the directory: \"/var/lib/wal\"");
    /* "d/b/.." climbs out when d/b is itself a symlink to the top: refused as such */
    CHECK_FAIL(tar_symlink_check("a", "d/b/..", &err), &err, ERR_CORRUPT,
               "symlink \"a\" has \"..\" inside its target \"d/b/..\"");
    CHECK_FAIL(tar_symlink_check("a", "", &err), &err, ERR_CORRUPT,
               "symlink \"a\" has an empty target");
}

static void
test_entries(void)
{
    char out[TAR_PATH_MAX], link[TAR_PATH_MAX];
    struct err err;

    CHECK_OK(tar_entry_check(out, link, "./base/1/x", TAR_FILE, NULL, &err), &err);
    CHECK_STR(out, "base/1/x");
    CHECK_OK(tar_entry_check(out, link, "base/", TAR_DIR, NULL, &err), &err);
    CHECK_STR(out, "base");
    CHECK_OK(tar_entry_check(out, link, "b", TAR_HARDLINK, "./base//1/x", &err), &err);
    CHECK_STR(link, "base/1/x");
    CHECK_FAIL(tar_entry_check(out, link, "hl", TAR_HARDLINK, "/etc/passwd", &err), &err,
               ERR_CORRUPT, "hard link \"hl\": tar entry \"/etc/passwd\" has an absolute path");
    CHECK_FAIL(tar_entry_check(out, link, "hl", TAR_HARDLINK, "", &err), &err, ERR_CORRUPT,
               "hard link \"hl\" has an empty target");
    CHECK_FAIL(tar_entry_check(out, link, "dev/null", TAR_OTHER, NULL, &err), &err, ERR_CORRUPT,
               "tar entry \"dev/null\" is a device, FIFO or socket");
    CHECK_FAIL(tar_entry_check(out, link, "l", TAR_SYMLINK, "../x", &err), &err, ERR_CORRUPT,
               "symlink \"l\" points outside the directory: \"../x\"");
    CHECK_FAIL(tar_entry_check(out, link, "../l", TAR_SYMLINK, "x", &err), &err, ERR_CORRUPT,
               "tar entry \"../l\" has a \"..\" component");
}

int
main(void)
{
    RUN(test_path_normalised);
    RUN(test_path_refused);
    RUN(test_symlinks);
    RUN(test_entries);
    return check_done();
}
