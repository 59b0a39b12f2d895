/*
 * decode_core EXE CORE [TRUTH]: decode everything the library can (tasks,
 * frames, locals, graph, diagnoses; every thread's frames by the library's
 * own unwinder), print the size of the JSON documents, and compare the
 * tasks decoded with the fixture's truth (TRUTH, default truth.json next to
 * CORE when there is one):
 *
 *  - tokio and crash cores: the listed task ids are exactly the truth's,
 *    each once; a stacks core (its truth has "in_flight" requests and
 *    lists the tasks its program named, not hyper's or h2's own): every
 *    truth id is listed;
 *  - executor cores (truth tasks carry an "anchor", an address inside the
 *    task's root future): each truth task is a distinct listed task one of
 *    whose async fn frames holds its anchor, with async-std's own id when
 *    the truth has one ("executor_task_id");
 *  - a crash core: the model's crash names the truth's crashing task;
 *  - a truth with no tasks (no_tokio): no task decoded, or a clean error.
 *
 * Exit status 1 on a mismatch or an error where the truth has tasks.  Run
 * under AddressSanitizer/UBSan/LeakSanitizer by `./dev sanitize` over every
 * fixture core and by `./dev test` over a few: memory errors and leaks fail
 * it too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "taskscope.h"

/* ------------------------------------------------------------- JSON */

/* Just enough JSON for the truth and the model: a tree of values; integers
 * kept exactly (ids, addresses as numbers in the truth). */
enum jtype { J_NULL, J_BOOL, J_INT, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype t;
	bool b;
	int64_t i;
	double d;
	char *s;           /* J_STR */
	size_t n;          /* J_ARR, J_OBJ: items */
	struct jv *items;
	char **keys;       /* J_OBJ */
};

struct jparser {
	const char *p, *end;
	const char *err;
	int depth;
};

static void jv_free(struct jv *v)
{
	if (!v)
		return;
	free(v->s);
	for (size_t k = 0; k < v->n; k++) {
		jv_free(&v->items[k]);
		if (v->keys)
			free(v->keys[k]);
	}
	free(v->items);
	free(v->keys);
}

static void skip_ws(struct jparser *jp)
{
	while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' ||
				   *jp->p == '\r'))
		jp->p++;
}

static void put_utf8(char *out, size_t *n, unsigned c)
{
	if (c < 0x80) {
		out[(*n)++] = (char)c;
	} else if (c < 0x800) {
		out[(*n)++] = (char)(0xc0 | c >> 6);
		out[(*n)++] = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		out[(*n)++] = (char)(0xe0 | c >> 12);
		out[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (c & 0x3f));
	} else {
		out[(*n)++] = (char)(0xf0 | c >> 18);
		out[(*n)++] = (char)(0x80 | ((c >> 12) & 0x3f));
		out[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (c & 0x3f));
	}
}

static int hex4(const char *p, unsigned *ret)
{
	unsigned v = 0;
	for (int k = 0; k < 4; k++) {
		char c = p[k];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*ret = v;
	return 0;
}

static char *parse_string(struct jparser *jp)
{
	if (jp->p >= jp->end || *jp->p != '"') {
		jp->err = "expected a string";
		return NULL;
	}
	const char *q = ++jp->p;
	while (q < jp->end && *q != '"')
		q += *q == '\\' ? 2 : 1;
	if (q >= jp->end) {
		jp->err = "unterminated string";
		return NULL;
	}
	/* an escape never grows: \uXXXX (6 bytes) is at most 4 of UTF-8 */
	char *out = malloc((size_t)(q - jp->p) + 1);
	size_t n = 0;
	if (!out) {
		jp->err = "out of memory";
		return NULL;
	}
	while (jp->p < q) {
		char c = *jp->p++;
		if (c != '\\') {
			out[n++] = c;
			continue;
		}
		c = *jp->p++;
		switch (c) {
		case 'n': out[n++] = '\n'; break;
		case 't': out[n++] = '\t'; break;
		case 'r': out[n++] = '\r'; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'u': {
			unsigned u, lo;
			if (q - jp->p < 4 || hex4(jp->p, &u)) {
				jp->err = "bad \\u escape";
				free(out);
				return NULL;
			}
			jp->p += 4;
			if (u >= 0xd800 && u < 0xdc00 && q - jp->p >= 6 && jp->p[0] == '\\' &&
			    jp->p[1] == 'u' && !hex4(jp->p + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) {
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
				jp->p += 6;
			}
			put_utf8(out, &n, u);
			break;
		}
		default: out[n++] = c; break; /* \" \\ \/ */
		}
	}
	jp->p = q + 1;
	out[n] = '\0';
	return out;
}

static int parse_value(struct jparser *jp, struct jv *v);

static int push_item(struct jparser *jp, struct jv *v, char *key)
{
	if ((v->n & (v->n - 1)) == 0) { /* grow at powers of two */
		size_t cap = v->n ? 2 * v->n : 1;
		struct jv *items = realloc(v->items, cap * sizeof(*items));
		if (items)
			v->items = items;
		char **keys = v->t == J_OBJ ? realloc(v->keys, cap * sizeof(*keys)) : NULL;
		if (keys)
			v->keys = keys;
		if (!items || (v->t == J_OBJ && !keys)) {
			free(key);
			jp->err = "out of memory";
			return -1;
		}
	}
	struct jv *it = &v->items[v->n];
	memset(it, 0, sizeof(*it));
	if (v->t == J_OBJ)
		v->keys[v->n] = key;
	v->n++;
	return parse_value(jp, it);
}

static int parse_value(struct jparser *jp, struct jv *v)
{
	memset(v, 0, sizeof(*v));
	skip_ws(jp);
	if (jp->p >= jp->end) {
		jp->err = "unexpected end";
		return -1;
	}
	if (++jp->depth > 1000) {
		jp->err = "nested too deep";
		return -1;
	}
	int rc = 0;
	char c = *jp->p;
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		v->t = c == '{' ? J_OBJ : J_ARR;
		jp->p++;
		skip_ws(jp);
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			goto out;
		}
		for (;;) {
			char *key = NULL;
			skip_ws(jp);
			if (v->t == J_OBJ) {
				if (!(key = parse_string(jp)))
					return -1;
				skip_ws(jp);
				if (jp->p >= jp->end || *jp->p++ != ':') {
					free(key);
					jp->err = "expected ':'";
					return -1;
				}
			}
			if (push_item(jp, v, key))
				return -1;
			skip_ws(jp);
			if (jp->p < jp->end && *jp->p == ',') {
				jp->p++;
				continue;
			}
			if (jp->p < jp->end && *jp->p == close) {
				jp->p++;
				break;
			}
			jp->err = "expected ',' or a closing bracket";
			return -1;
		}
	} else if (c == '"') {
		v->t = J_STR;
		if (!(v->s = parse_string(jp)))
			return -1;
	} else if (jp->end - jp->p >= 4 && !memcmp(jp->p, "null", 4)) {
		jp->p += 4;
	} else if (jp->end - jp->p >= 4 && !memcmp(jp->p, "true", 4)) {
		v->t = J_BOOL;
		v->b = true;
		jp->p += 4;
	} else if (jp->end - jp->p >= 5 && !memcmp(jp->p, "false", 5)) {
		v->t = J_BOOL;
		jp->p += 5;
	} else {
		const char *q = jp->p;
		bool frac = false;
		while (q < jp->end && strchr("+-0123456789.eE", *q)) {
			frac |= *q == '.' || *q == 'e' || *q == 'E';
			q++;
		}
		if (q == jp->p) {
			jp->err = "unexpected character";
			return -1;
		}
		char buf[64];
		size_t len = (size_t)(q - jp->p) < sizeof(buf) - 1 ? (size_t)(q - jp->p) : sizeof(buf) - 1;
		memcpy(buf, jp->p, len);
		buf[len] = '\0';
		errno = 0;
		if (!frac) {
			/* an address above INT64_MAX is kept by its bits */
			v->t = J_INT;
			v->i = buf[0] == '-' ? strtoll(buf, NULL, 10)
					     : (int64_t)strtoull(buf, NULL, 10);
		}
		if (frac || errno) {
			v->t = J_NUM;
			v->d = strtod(buf, NULL);
		}
		jp->p = q;
	}
out:
	jp->depth--;
	return rc;
}

/* The document in @text, or NULL with @why set. */
static struct jv *json_parse(const char *text, size_t len, const char **why)
{
	struct jparser jp = { text, text + len, NULL, 0 };
	struct jv *v = malloc(sizeof(*v));
	if (!v) {
		*why = "out of memory";
		return NULL;
	}
	if (parse_value(&jp, v) == 0) {
		skip_ws(&jp);
		if (jp.p == jp.end) {
			*why = NULL;
			return v;
		}
		jp.err = "trailing characters";
	}
	*why = jp.err;
	jv_free(v);
	free(v);
	return NULL;
}

static void json_destroy(struct jv *v)
{
	jv_free(v);
	free(v);
}

static const struct jv *jget(const struct jv *o, const char *key)
{
	if (!o || o->t != J_OBJ)
		return NULL;
	for (size_t k = 0; k < o->n; k++)
		if (!strcmp(o->keys[k], key))
			return &o->items[k];
	return NULL;
}

/* @v as an integer: a number, or a "0x..." string (the model's addresses). */
static bool jint(const struct jv *v, int64_t *ret)
{
	if (v && v->t == J_INT) {
		*ret = v->i;
		return true;
	}
	if (v && v->t == J_STR && v->s[0] == '0' && v->s[1] == 'x') {
		*ret = (int64_t)strtoull(v->s, NULL, 16);
		return true;
	}
	return false;
}

static size_t jlen(const struct jv *v)
{
	return v && v->t == J_ARR ? v->n : 0;
}

/* ------------------------------------------------------------ truth */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		char *nb = realloc(buf, cap *= 2);
		if (!nb) {
			free(buf);
			buf = NULL;
		}
		buf = nb;
	}
	fclose(f);
	*len = n;
	return buf;
}

static int mismatches;

#define MISMATCH(...)                                                         \
	do {                                                                  \
		if (mismatches++ < 20) {                                      \
			printf("truth mismatch: ");                           \
			printf(__VA_ARGS__);                                  \
			putchar('\n');                                        \
		}                                                             \
	} while (0)

/* Does one of the async fn frames of @frames hold @anchor?  (The task's
 * own frames, as test_executors.py matches them.) */
static bool frames_hold(const struct jv *frames, int64_t anchor)
{
	for (size_t k = 0; k < jlen(frames); k++) {
		const struct jv *f = &frames->items[k];
		const struct jv *kind = jget(f, "kind");
		int64_t addr, size;
		if (kind && kind->t == J_STR && !strcmp(kind->s, "async fn") &&
		    jint(jget(f, "address"), &addr) && jint(jget(f, "size"), &size) &&
		    (uint64_t)addr <= (uint64_t)anchor &&
		    (uint64_t)anchor < (uint64_t)addr + (uint64_t)size)
			return true;
	}
	return false;
}

/* Executor cores: tasks by anchor. */
static void check_anchors(const struct jv *ttasks, const struct jv *mtasks)
{
	size_t nt = jlen(ttasks), nm = jlen(mtasks);
	bool *used = calloc(nm ? nm : 1, sizeof(bool));
	for (size_t k = 0; k < nt; k++) {
		const struct jv *tt = &ttasks->items[k];
		int64_t tid = -1, anchor, eid;
		jint(jget(tt, "id"), &tid);
		if (!jint(jget(tt, "anchor"), &anchor)) {
			MISMATCH("truth task %" PRId64 " has no anchor", tid);
			continue;
		}
		size_t hit = SIZE_MAX, hits = 0;
		for (size_t m = 0; m < nm; m++)
			if (frames_hold(jget(&mtasks->items[m], "frames"), anchor)) {
				hit = m;
				hits++;
			}
		if (hits != 1) {
			MISMATCH("truth task %" PRId64 ": %zu listed tasks hold its anchor 0x%" PRIx64,
				 tid, hits, (uint64_t)anchor);
			continue;
		}
		if (used[hit])
			MISMATCH("truth task %" PRId64 ": its listed task holds another truth task's anchor too",
				 tid);
		used[hit] = true;
		int64_t id = -1;
		jint(jget(&mtasks->items[hit], "id"), &id);
		if (jint(jget(tt, "executor_task_id"), &eid) && eid != id)
			MISMATCH("truth task %" PRId64 ": id %" PRId64 ", the executor's own is %" PRId64,
				 tid, id, eid);
	}
	free(used);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* tokio, crash and stacks cores: the truth's ids; all of them and only
 * them unless @subset. */
static void check_ids(const struct jv *ttasks, const struct jv *mtasks, bool subset)
{
	size_t nt = jlen(ttasks), nm = jlen(mtasks);
	int64_t *ids = malloc((nm ? nm : 1) * sizeof(*ids));
	bool *seen = calloc(nm ? nm : 1, sizeof(bool));
	size_t n = 0;
	for (size_t m = 0; m < nm; m++) {
		int64_t id;
		if (jint(jget(&mtasks->items[m], "id"), &id))
			ids[n++] = id;
		else if (!subset)
			MISMATCH("listed task %zu has no id", m);
	}
	/* many_idle lists 10,000 tasks: sort, then look up */
	qsort(ids, n, sizeof(*ids), cmp_i64);
	for (size_t m = 1; m < n; m++)
		if (ids[m] == ids[m - 1])
			MISMATCH("task id %" PRId64 " listed twice", ids[m]);
	for (size_t k = 0; k < nt; k++) {
		int64_t tid;
		if (!jint(jget(&ttasks->items[k], "id"), &tid)) {
			MISMATCH("truth task %zu has no id", k);
			continue;
		}
		int64_t *at = bsearch(&tid, ids, n, sizeof(*ids), cmp_i64);
		if (!at) {
			MISMATCH("truth task %" PRId64 " is not listed", tid);
			continue;
		}
		seen[at - ids] = true;
	}
	if (!subset)
		for (size_t m = 0; m < n; m++)
			if (!seen[m] && (m == 0 || ids[m] != ids[m - 1]))
				MISMATCH("listed task %" PRId64 " is no truth task", ids[m]);
	if (!subset && n != nt)
		MISMATCH("%zu tasks listed, the truth has %zu", n, nt);
	free(ids);
	free(seen);
}

/* Compares the decoded @model (NULL: the decode failed) with @truth. */
static void check_truth(const struct jv *truth, const struct jv *model)
{
	const struct jv *ttasks = jget(truth, "tasks");
	size_t nt = jlen(ttasks);
	if (!ttasks || ttasks->t != J_ARR) {
		MISMATCH("the truth has no task list");
		return;
	}
	if (!model) {
		if (nt)
			MISMATCH("the decode failed, the truth has %zu tasks", nt);
		else
			printf("truth: no tasks, and a clean error\n");
		return;
	}
	const struct jv *mtasks = jget(model, "tasks");
	bool anchored = nt && jget(&ttasks->items[0], "anchor");
	bool stacks = jget(truth, "in_flight") != NULL;
	if (anchored)
		check_anchors(ttasks, mtasks);
	else
		check_ids(ttasks, mtasks, stacks);
	const struct jv *tc = jget(truth, "crash");
	int64_t want, got;
	if (tc && tc->t == J_OBJ && jint(jget(tc, "task"), &want)) {
		const struct jv *mc = jget(model, "crash");
		if (!mc || mc->t != J_OBJ)
			MISMATCH("the truth crashed in task %" PRId64 ", the model has no crash", want);
		else if (!jint(jget(mc, "task"), &got) || got != want)
			MISMATCH("the truth crashed in task %" PRId64 ", the model's crash names %s",
				 want, jint(jget(mc, "task"), &got) ? "another task" : "none");
	}
	if (mismatches) {
		printf("truth: %zu tasks, %d mismatches\n", nt, mismatches);
		return;
	}
	printf("truth: %zu tasks, %s%s\n", nt,
	       anchored ? "each truth task by its anchor" :
	       stacks   ? "every truth id listed" : "the same ids",
	       tc && tc->t == J_OBJ ? ", the same crashing task" : "");
}

/* TRUTH, or truth.json next to @core (NULL if there is none). */
static char *truth_path(const char *core)
{
	const char *slash = strrchr(core, '/');
	size_t dir = slash ? (size_t)(slash - core) + 1 : 0;
	char *p = malloc(dir + sizeof("truth.json"));
	if (!p)
		return NULL;
	memcpy(p, core, dir);
	strcpy(p + dir, "truth.json");
	if (access(p, R_OK)) {
		free(p);
		return NULL;
	}
	return p;
}

/* -------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	/* line by line: a sanitizer ends the process with _exit(), and its
	 * report should follow what was decoded, not lose it in a buffer */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: decode_core EXE CORE [TRUTH]\n");
		return 2;
	}
	char *tpath = argc == 4 ? strdup(argv[3]) : truth_path(argv[2]);
	struct jv *truth = NULL;
	if (tpath) {
		size_t len;
		const char *why = NULL;
		char *text = read_file(tpath, &len);
		if (text)
			truth = json_parse(text, len, &why);
		else
			why = strerror(errno);
		free(text);
		if (!truth) {
			fprintf(stderr, "decode_core: %s: %s\n", tpath, why);
			free(tpath);
			return 2;
		}
	}
	struct tscope_program *prog = NULL;
	struct tscope_target *target = NULL;
	struct tscope_session *session = NULL;
	struct jv *model = NULL;
	char *json = NULL;
	bool failed = false;
	struct tscope_error *err = tscope_program_open(argv[1], &prog);
	if (!err)
		err = tscope_target_open_core(argv[2], &target);
	if (!err)
		err = tscope_session_create(prog, target, &session);
	if (!err)
		err = tscope_session_tasks_json(session,
						TSCOPE_JSON_FRAMES | TSCOPE_JSON_LOCALS |
							TSCOPE_JSON_GRAPH,
						&json);
	if (err) {
		/* A clean error is a result too (no_tokio, truncated...). */
		printf("error (%d): %s\n", tscope_error_code(err),
		       tscope_error_message(err));
		tscope_error_destroy(err);
		failed = true;
	} else {
		const char *why;
		printf("%zu bytes of JSON\n", strlen(json));
		if (!(model = json_parse(json, strlen(json), &why)))
			MISMATCH("the library's JSON does not parse: %s", why);
		size_t frames = 0, n = tscope_target_num_threads(target);
		for (size_t i = 0; i < n; i++) {
			int tid;
			uint64_t fs, pc;
			char *fj = NULL;
			struct tscope_error *e = tscope_target_thread(target, i, &tid, &fs, &pc);
			if (!e)
				e = tscope_session_thread_frames_json(session, tid, 0, &fj);
			if (e) {
				printf("thread %zu: error (%d): %s\n", i, tscope_error_code(e),
				       tscope_error_message(e));
				tscope_error_destroy(e);
			} else {
				frames += strlen(fj);
			}
			tscope_free(fj);
		}
		printf("%zu threads unwound, %zu bytes of frames\n", n, frames);
	}
	if (truth && (model || failed))
		check_truth(truth, model);
	else if (!truth)
		printf("truth: none next to the core, not compared\n");
	json_destroy(model);
	json_destroy(truth);
	free(tpath);
	tscope_free(json);
	tscope_session_destroy(session);
	tscope_target_destroy(target);
	tscope_program_destroy(prog);
	return mismatches ? 1 : 0;
}
