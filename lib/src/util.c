#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct tscope_error tscope_error_nomem = {
	.code = TSCOPE_ERROR_NO_MEMORY,
	.is_static = true,
	.message = "out of memory",
};

static const char *const error_names[] = {
#define TSCOPE_X_NAME(code, name) name,
	TSCOPE_ERROR_CODES(TSCOPE_X_NAME)
#undef TSCOPE_X_NAME
};

struct tscope_error *tscope_error_create(enum tscope_error_code code,
					 const char *fmt, ...)
{
	struct tscope_error *err = malloc(sizeof(*err));
	if (!err)
		return &tscope_error_nomem;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&err->message, fmt, ap) < 0)
		err->message = NULL;
	va_end(ap);
	if (!err->message) {
		free(err);
		return &tscope_error_nomem;
	}
	err->code = code;
	err->is_static = false;
	return err;
}

struct tscope_error *tscope_error_wrap(struct tscope_error *err,
				       const char *fmt, ...)
{
	if (!err || err->is_static)
		return err;
	char *prefix;
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&prefix, fmt, ap);
	va_end(ap);
	if (r < 0)
		return err;
	char *msg;
	if (asprintf(&msg, "%s: %s", prefix, err->message) >= 0) {
		free(err->message);
		err->message = msg;
	}
	free(prefix);
	return err;
}

TSCOPE_PUBLIC enum tscope_error_code
tscope_error_code(const struct tscope_error *err)
{
	return err ? err->code : TSCOPE_ERROR_OK;
}

TSCOPE_PUBLIC const char *tscope_error_message(const struct tscope_error *err)
{
	if (!err)
		return "success";
	return err->message ? err->message : error_names[err->code];
}

TSCOPE_PUBLIC void tscope_error_destroy(struct tscope_error *err)
{
	if (!err || err->is_static)
		return;
	free(err->message);
	free(err);
}

TSCOPE_PUBLIC void tscope_free(void *ptr) { free(ptr); }

TSCOPE_PUBLIC const char *tscope_version(void) { return "0.1.0"; }

/* ------------------------------------------------------------- strbuf */

void *grow_room(void *arr, size_t want, size_t size)
{
	if (size && want > SIZE_MAX / 2 / size)
		return NULL;
	if (want * size <= malloc_usable_size(arr))
		return arr;
	return realloc(arr, (arr ? 2 * want : want) * size);
}

void sb_init(struct strbuf *sb) { memset(sb, 0, sizeof(*sb)); }
void sb_free(struct strbuf *sb)
{
	free(sb->s);
	sb_init(sb);
}

static bool sb_reserve(struct strbuf *sb, size_t extra)
{
	if (sb->oom)
		return false;
	if (sb->len + extra + 1 <= sb->cap)
		return true;
	size_t cap = sb->cap ? sb->cap : 256;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	char *s = realloc(sb->s, cap);
	if (!s) {
		sb->oom = true;
		return false;
	}
	sb->s = s;
	sb->cap = cap;
	return true;
}

void sb_append(struct strbuf *sb, const char *s, size_t n)
{
	if (!sb_reserve(sb, n))
		return;
	memcpy(sb->s + sb->len, s, n);
	sb->len += n;
	sb->s[sb->len] = '\0';
}

void sb_puts(struct strbuf *sb, const char *s) { sb_append(sb, s, strlen(s)); }

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	/* one vsnprintf into the room there is (most texts are short); a
	 * second only when it did not fit */
	if (!sb_reserve(sb, 64))
		return;
	va_list ap;
	va_start(ap, fmt);
	size_t room = sb->cap - sb->len;
	int n = vsnprintf(sb->s + sb->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->s[sb->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		if (!sb_reserve(sb, (size_t)n)) {
			sb->s[sb->len] = '\0';
			return;
		}
		va_start(ap, fmt);
		vsnprintf(sb->s + sb->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	sb->len += (size_t)n;
}

void sb_u64(struct strbuf *sb, uint64_t v)
{
	char buf[24], *p = buf + sizeof(buf);
	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	sb_append(sb, p, (size_t)(buf + sizeof(buf) - p));
}

void sb_hex(struct strbuf *sb, uint64_t v)
{
	char buf[24], *p = buf + sizeof(buf);
	do
		*--p = "0123456789abcdef"[v & 15];
	while (v >>= 4);
	*--p = 'x';
	*--p = '0';
	sb_append(sb, p, (size_t)(buf + sizeof(buf) - p));
}

/* Bytes a JSON string holds as they are: printable ASCII but for the
 * quote and the backslash (UTF-8 is checked apart: utf8_len()). */
static inline bool json_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* The length of the well-formed UTF-8 sequence at @p (its first byte
 * >= 0x80), or 0: text read from a program's memory may be anything, and
 * a JSON document is UTF-8 (a reader may write it out as it is). */
static size_t utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	size_t n;
	unsigned min;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000;
	else
		return 0;
	unsigned v = c & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) /* (the NUL ends it here too) */
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	return n;
}

void sb_json_string(struct strbuf *sb, const char *s)
{
	if (!s) {
		sb_append(sb, "null", 4);
		return;
	}
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	/* the common case, nothing to escape: one copy */
	if (!sb_reserve(sb, n + 2))
		return;
	sb->s[sb->len++] = '"';
	for (;;) {
		const unsigned char *run = p;
		while (json_plain(*p))
			p++;
		sb_append(sb, (const char *)run, (size_t)(p - run));
		if (!*p)
			break;
		if (*p >= 0x80) {
			size_t k = utf8_len(p);
			if (k)
				sb_append(sb, (const char *)p, k);
			else
				sb_append(sb, "\\ufffd", 6); /* not UTF-8: U+FFFD */
			p += k ? k : 1;
			continue;
		}
		char esc[8];
		switch (*p) {
		case '"': sb_append(sb, "\\\"", 2); break;
		case '\\': sb_append(sb, "\\\\", 2); break;
		case '\n': sb_append(sb, "\\n", 2); break;
		case '\t': sb_append(sb, "\\t", 2); break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			sb_append(sb, esc, 6);
		}
		p++;
	}
	sb_append(sb, "\"", 1);
}

char *sb_steal(struct strbuf *sb)
{
	if (sb->oom) {
		sb_free(sb);
		return NULL;
	}
	if (!sb->s)
		sb_append(sb, "", 0);
	char *s = sb->s;
	sb_init(sb);
	return s;
}

/* ------------------------------------------------------------- maps */

uint64_t hash_bytes(const void *p, size_t n)
{
	/* FNV-1a, then a final mix so low bits are usable as a table index. */
	uint64_t h = 0xcbf29ce484222325ull;
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

void strmap_init(struct strmap *m) { memset(m, 0, sizeof(*m)); }

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->nchunks; i++)
		free(m->chunks[i]);
	free(m->chunks);
	if (!m->borrowed)
		free(m->entries);
	strmap_init(m);
}

const char *strmap_intern(struct strmap *m, const char *s, size_t n)
{
	if (m->nchunks == 0 || m->chunk_used + n + 1 > m->chunk_cap) {
		size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
		char **chunks = realloc(m->chunks,
					(m->nchunks + 1) * sizeof(*chunks));
		if (!chunks)
			return NULL;
		m->chunks = chunks;
		char *c = malloc(cap);
		if (!c)
			return NULL;
		m->chunks[m->nchunks++] = c;
		m->chunk_used = 0;
		m->chunk_cap = cap;
	}
	char *dst = m->chunks[m->nchunks - 1] + m->chunk_used;
	memcpy(dst, s, n);
	dst[n] = '\0';
	m->chunk_used += n + 1;
	return dst;
}

static bool strmap_grow(struct strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024;
	struct strmap_entry *e = calloc(cap, sizeof(*e));
	if (!e)
		return false;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->entries[i].key)
			continue;
		size_t j = m->entries[i].hash & (cap - 1);
		while (e[j].key)
			j = (j + 1) & (cap - 1);
		e[j] = m->entries[i];
	}
	if (!m->borrowed)
		free(m->entries);
	m->borrowed = false;
	m->entries = e;
	m->cap = cap;
	return true;
}

bool strmap_insert(struct strmap *m, const char *key, size_t keylen,
		   uint64_t value)
{
	if ((m->count + 1) * 2 > m->cap && !strmap_grow(m))
		return false;
	uint64_t h = hash_bytes(key, keylen);
	size_t j = h & (m->cap - 1);
	while (m->entries[j].key) {
		if (m->entries[j].hash == h &&
		    strlen(m->entries[j].key) == keylen &&
		    memcmp(m->entries[j].key, key, keylen) == 0)
			return true;
		j = (j + 1) & (m->cap - 1);
	}
	const char *k = strmap_intern(m, key, keylen);
	if (!k)
		return false;
	m->entries[j].key = k;
	m->entries[j].hash = h;
	m->entries[j].value = value;
	m->count++;
	return true;
}

bool strmap_lookup(const struct strmap *m, const char *key, uint64_t *ret)
{
	if (!m->cap)
		return false;
	size_t n = strlen(key);
	uint64_t h = hash_bytes(key, n);
	size_t j = h & (m->cap - 1);
	while (m->entries[j].key) {
		if (m->entries[j].hash == h && strcmp(m->entries[j].key, key) == 0) {
			*ret = m->entries[j].value;
			return true;
		}
		j = (j + 1) & (m->cap - 1);
	}
	return false;
}

void u64map_init(struct u64map *m) { memset(m, 0, sizeof(*m)); }
void u64map_free(struct u64map *m)
{
	if (!m->borrowed) {
		free(m->keys);
		free(m->vals);
	}
	u64map_init(m);
}

static size_t u64_slot(uint64_t k, size_t cap)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k & (cap - 1);
}

bool u64map_put(struct u64map *m, uint64_t key, uint64_t val)
{
	if ((m->count + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		uint64_t *keys = calloc(cap, sizeof(*keys));
		uint64_t *vals = calloc(cap, sizeof(*vals));
		if (!keys || !vals) {
			free(keys);
			free(vals);
			return false;
		}
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->keys[i])
				continue;
			size_t j = u64_slot(m->keys[i], cap);
			while (keys[j])
				j = (j + 1) & (cap - 1);
			keys[j] = m->keys[i];
			vals[j] = m->vals[i];
		}
		if (!m->borrowed) {
			free(m->keys);
			free(m->vals);
		}
		m->borrowed = false;
		m->keys = keys;
		m->vals = vals;
		m->cap = cap;
	}
	size_t j = u64_slot(key, m->cap);
	while (m->keys[j] && m->keys[j] != key)
		j = (j + 1) & (m->cap - 1);
	if (!m->keys[j])
		m->count++;
	m->keys[j] = key;
	m->vals[j] = val;
	return true;
}

bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *ret)
{
	if (!m->cap)
		return false;
	size_t j = u64_slot(key, m->cap);
	while (m->keys[j]) {
		if (m->keys[j] == key) {
			if (ret)
				*ret = m->vals[j];
			return true;
		}
		j = (j + 1) & (m->cap - 1);
	}
	return false;
}

/* ------------------------------------------------------- opening files */

static const char *file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "is a directory";
	if (S_ISFIFO(mode))
		return "is a FIFO (named pipe)";
	if (S_ISCHR(mode))
		return "is a character device";
	if (S_ISBLK(mode))
		return "is a block device";
	if (S_ISSOCK(mode))
		return "is a socket";
	return "is not a regular file";
}

int open_regular_file(const char *path, struct stat *st_ret, const char **why_ret)
{
	struct stat st, fst;
	*why_ret = NULL;
	if (stat(path, &st) != 0) {
		*why_ret = strerror(errno);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*why_ret = file_kind(st.st_mode);
		return -2;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		*why_ret = strerror(errno);
		return -1;
	}
	int r = fstat(fd, &fst);
	if (r != 0 || !S_ISREG(fst.st_mode)) {
		*why_ret = r != 0 ? strerror(errno) : file_kind(fst.st_mode);
		close(fd);
		return r != 0 ? -1 : -2;
	}
	/* O_NONBLOCK means nothing for a regular file; dropped all the same
	 * so that the descriptor is an ordinary one */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	if (st_ret)
		*st_ret = fst;
	return fd;
}
