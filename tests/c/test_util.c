/*
 * The JSON string writer (util.c) on text a program's memory can hold:
 * every document is UTF-8 whatever the bytes it quotes, since front ends
 * write the library's text out as it is (info async-tasks --json, the
 * CLI).  Well-formed UTF-8 stays as it is; every byte of an ill-formed
 * sequence (a lone continuation byte, a cut sequence, an overlong form,
 * a surrogate, past U+10FFFF) becomes U+FFFD; control bytes are escaped.
 *
 * Built from the library's objects (internal symbols).
 */
#include <stdlib.h>

#include "check.h"
#include "internal.h"

static void check_quoted(const char *in, const char *want)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_json_string(&sb, in);
	char *got = sb_steal(&sb);
	CHECK(got && strcmp(got, want) == 0, "quoting \"%s\": expected %s, found %s", in, want,
	      got ? got : "(null)");
	free(got);
}

int main(void)
{
	check_quoted("plain::path<T>", "\"plain::path<T>\"");
	check_quoted("a\"b\\c\nd\te\x01", "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
	/* well-formed: 2, 3 and 4 bytes */
	check_quoted("caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\xa6\x80", "\"caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\xa6\x80\"");
	/* a lone continuation byte, a lead byte at the end, a cut sequence */
	check_quoted("x\x80y", "\"x\\ufffdy\"");
	check_quoted("x\xc3", "\"x\\ufffd\"");
	check_quoted("\xe2\x86z", "\"\\ufffd\\ufffdz\"");
	/* overlong forms, a surrogate, past U+10FFFF, bytes never in UTF-8 */
	check_quoted("\xc0\xaf", "\"\\ufffd\\ufffd\"");
	check_quoted("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");
	check_quoted("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	check_quoted("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	check_quoted("\xff\xfe", "\"\\ufffd\\ufffd\"");
	return check_report("test_util");
}
