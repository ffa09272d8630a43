/* SPDX-License-Identifier: MIT */
/*
 * Standalone driver for the fuzz targets when not built with libFuzzer: runs
 * LLVMFuzzerTestOneInput on every file of the corpus directories (or files)
 * named on the command line, so the corpus replays as a test (TAP output).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n_run;

static int
run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long len;

    if (!f) {
        printf("not ok - could not open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc(len > 0 ? (size_t)len : 1);
    if (!data || fread(data, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(data);
        printf("not ok - could not read %s\n", path);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, (size_t)len);
    free(data);
    n_run++;
    return 0;
}

static int
cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
run_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;
    int rc = 0;

    if (stat(path, &st) < 0) {
        printf("not ok - no corpus at %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    d = opendir(path);
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        size_t sz = strlen(path) + strlen(de->d_name) + 2;
        names[n] = malloc(sz);
        snprintf(names[n], sz, "%s/%s", path, de->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp);
    for (size_t i = 0; i < n; i++) {
        if (run_file(names[i]) < 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int
main(int argc, char **argv)
{
    int rc = 0;

    for (int i = 1; i < argc; i++)
        if (run_path(argv[i]) < 0)
            rc = 1;
    if (n_run == 0) {
        printf("not ok 1 - empty corpus\n1..1\n");
        return 1;
    }
    printf("%s 1 - replayed %d inputs without a crash\n1..1\n", rc ? "not ok" : "ok", n_run);
    return rc;
}
