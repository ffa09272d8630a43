/* SPDX-License-Identifier: MIT */
/*
 * Safety checks on tar entries before anything is written: the rules
 * ferry-restore applies to every member of a base backup's tar streams, kept
 * apart from the I/O so the fuzz target exercises exactly them. Pure string
 * work, no I/O, no libarchive types.
 *
 * Accepted: regular files, directories, symlinks and hard links whose name
 * is relative, free of ".." components, and not empty; a symlink's target
 * must be relative, with ".." only as leading components and never climbing
 * above the extraction root from the link's directory (so no chain of
 * symlinks can lead outside it either); a hard link's target obeys the name
 * rules. Everything else (devices, FIFOs, sockets) is refused.
 */
#ifndef FORMAT_TAR_H
#define FORMAT_TAR_H

#include <stddef.h>

#include "base/err.h"

#define TAR_PATH_MAX 4096

enum tar_type { TAR_FILE = 1, TAR_DIR, TAR_SYMLINK, TAR_HARDLINK, TAR_OTHER };

/*
 * Normalise an entry name into out (size TAR_PATH_MAX): "./" prefixes, "."
 * components, repeated and trailing slashes dropped. ERR_CORRUPT with the
 * reason ("tar entry \"../x\" has a \"..\" component") on an absolute name,
 * a ".." component, an empty name (after normalising) or a name too long.
 */
struct archive_entry;

/*
 * The kind of a libarchive entry, and the target of a link (*target NULL
 * for files and directories). One place so that restore, verify and the
 * fuzz target classify entries alike.
 */
enum tar_type tar_entry_type(struct archive_entry *ae, const char **target);

int tar_path_check(char out[TAR_PATH_MAX], const char *name, struct err *err);

/*
 * Check the symlink target of the entry whose normalised name is path.
 * ERR_CORRUPT when it is empty, absolute, has ".." after another component,
 * or climbs above the root ("symlink \"a/b\" points outside the directory:
 * \"../../x\"").
 */
int tar_symlink_check(const char *path, const char *target, struct err *err);

/*
 * Check one entry: its name (normalised into out), its type, its link
 * target (symlink or hard link; NULL otherwise; a hard link's normalised
 * target goes to link_out, size TAR_PATH_MAX, when not NULL). ERR_CORRUPT
 * for anything tar_path_check or tar_symlink_check refuse and for TAR_OTHER
 * ("tar entry \"dev/x\" is a device, FIFO or socket").
 */
int tar_entry_check(char out[TAR_PATH_MAX], char *link_out, const char *name, enum tar_type type,
                    const char *link, struct err *err);

#endif
