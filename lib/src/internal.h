/* Internal helpers shared by the stages: errors, growable buffers, JSON. */
#ifndef TSCOPE_INTERNAL_H
#define TSCOPE_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "taskscope.h"

#define TSCOPE_HIDDEN __attribute__((visibility("hidden")))
#ifndef ARRAY_SIZE /* libiberty.h (the demangler) has the same one */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

struct tscope_error {
	enum tscope_error_code code;
	bool is_static;
	char *message;
};

/* Preallocated: returned when allocating an error itself fails. */
extern struct tscope_error tscope_error_nomem;

struct tscope_error *tscope_error_create(enum tscope_error_code code,
					 const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prefix @err's message with a printf-formatted context ("reading X: "). */
struct tscope_error *tscope_error_wrap(struct tscope_error *err,
				       const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Growable string. */
struct strbuf {
	char *s;
	size_t len, cap;
	bool oom;
};
/* Room for @want elements of @size bytes in the malloc'ed array @arr
 * (NULL: none yet): @arr itself when its block already holds them, else
 * the array moved to a block twice that size (NULL out of memory, @arr
 * left as it was); the first block holds exactly @want (most of these
 * arrays keep one element: a oneshot's one waiter, a million times over).
 * For arrays that keep no capacity: whatever made the
 * block (malloc, calloc, an exact realloc), growing one by one costs
 * O(n) copies in all, not O(n^2) (a lock with 100k waiters). */
void *grow_room(void *arr, size_t want, size_t size);

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_append(struct strbuf *sb, const char *s, size_t n);
void sb_puts(struct strbuf *sb, const char *s);
void sb_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sb_json_string(struct strbuf *sb, const char *s);
/* @v in decimal; in hex with "0x" (as printf's %llu, 0x%llx) */
void sb_u64(struct strbuf *sb, uint64_t v);
void sb_hex(struct strbuf *sb, uint64_t v);
/* Steal the string (NULL on OOM). */
char *sb_steal(struct strbuf *sb);

/* Open-addressing string -> uint64 map (keys are copied into an arena). */
struct strmap {
	struct strmap_entry {
		const char *key;
		uint64_t hash;
		uint64_t value;
	} *entries;
	size_t cap, count;
	char **chunks;
	size_t nchunks, chunk_used, chunk_cap;
	bool borrowed; /* entries are not ours (a mapped index cache): never freed */
};
void strmap_init(struct strmap *m);
void strmap_free(struct strmap *m);
/* Insert if absent; returns false on OOM.  Existing keys keep their value. */
bool strmap_insert(struct strmap *m, const char *key, size_t keylen,
		   uint64_t value);
bool strmap_lookup(const struct strmap *m, const char *key, uint64_t *ret);
/* Copy a string into the map's arena (stable pointer). */
const char *strmap_intern(struct strmap *m, const char *s, size_t n);

uint64_t hash_bytes(const void *p, size_t n);

/* u64 -> u64 set/map (open addressing, key 0 reserved). */
struct u64map {
	uint64_t *keys, *vals;
	size_t cap, count;
	bool borrowed; /* keys and vals are not ours (a mapped index cache) */
};
void u64map_init(struct u64map *m);
void u64map_free(struct u64map *m);
bool u64map_put(struct u64map *m, uint64_t key, uint64_t val);
bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *ret);

/* Open @path for reading if it is a regular file, and only then: a path the
 * user gave or a core named may be a FIFO (open() would block forever), a
 * device (opening one can have effects, reading one may never end) or a
 * directory.  It is stat()ed first, opened with O_NONBLOCK and O_NOCTTY, then
 * fstat()ed again (it may have changed in between).  Returns the descriptor
 * (O_CLOEXEC; @st_ret, if not NULL, its status); -1 when it cannot be
 * opened, *@why_ret then strerror(errno); -2 when it is not a regular file,
 * *@why_ret then a static phrase to follow the path in a message ("is a
 * directory", "is a FIFO (named pipe)", ...). */
struct stat;
int open_regular_file(const char *path, struct stat *st_ret, const char **why_ret);

#endif
