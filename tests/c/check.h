/* Minimal assertions for the C unit tests: each failed check prints
 * file:line, what was expected and what was found, and the test binary
 * exits non-zero if any check failed.  No framework, no timing. */
#ifndef TSCOPE_TEST_CHECK_H
#define TSCOPE_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "taskscope.h"

static int check_failures;
static int check_count;

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		check_count++;                                                \
		if (!(cond)) {                                                \
			check_failures++;                                     \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, \
				#cond);                                       \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

#define CHECK_U64_EQ(expected, found)                                         \
	do {                                                                  \
		uint64_t e_ = (uint64_t)(expected), f_ = (uint64_t)(found);   \
		CHECK(e_ == f_, "expected %s = 0x%" PRIx64 ", found 0x%" PRIx64, \
		      #found, e_, f_);                                        \
	} while (0)

#define CHECK_STR_EQ(expected, found)                                         \
	do {                                                                  \
		const char *e_ = (expected), *f_ = (found);                   \
		CHECK(f_ && strcmp(e_, f_) == 0, "expected %s = \"%s\", found \"%s\"", \
		      #found, e_, f_ ? f_ : "(null)");                        \
	} while (0)

static const char *code_name(enum tscope_error_code c)
{
	static const char *names[] = {
#define X_(code, name) #code,
		TSCOPE_ERROR_CODES(X_)
#undef X_
	};
	return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}

/* @err must be NULL; otherwise print its message.  Consumes @err. */
#define CHECK_OK(err_expr)                                                    \
	do {                                                                  \
		struct tscope_error *e_ = (err_expr);                         \
		CHECK(e_ == NULL, "expected success of %s, found %s: %s",     \
		      #err_expr, code_name(tscope_error_code(e_)),            \
		      tscope_error_message(e_));                              \
		tscope_error_destroy(e_);                                     \
	} while (0)

/* @err must have code @code and, if @needle is not NULL, a message
 * containing it.  Consumes @err. */
#define CHECK_ERR(err_expr, code, needle)                                     \
	do {                                                                  \
		struct tscope_error *e_ = (err_expr);                         \
		const char *n_ = (needle);                                    \
		CHECK(e_ && tscope_error_code(e_) == (code),                  \
		      "expected %s from %s, found %s (%s)", code_name(code),  \
		      #err_expr, e_ ? code_name(tscope_error_code(e_)) : "success", \
		      e_ ? tscope_error_message(e_) : "no error");            \
		if (e_ && n_)                                                 \
			CHECK(strstr(tscope_error_message(e_), n_) != NULL,   \
			      "expected \"%s\" in the message of %s, found \"%s\"", \
			      n_, #err_expr, tscope_error_message(e_));       \
		tscope_error_destroy(e_);                                     \
	} while (0)

static int check_report(const char *name)
{
	if (check_failures)
		fprintf(stderr, "%s: %d of %d checks failed\n", name,
			check_failures, check_count);
	else
		printf("%s: all %d checks passed\n", name, check_count);
	return check_failures ? 1 : 0;
}

#endif
