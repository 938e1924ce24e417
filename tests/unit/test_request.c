#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "request.h"
#include "unit.h"

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
#define CHAT_OK "{\"model\":\"openai/gpt-4o-mini\"," MSGS "}"
#define EMB(input) "{\"model\":\"openai/text-embedding-3-small\",\"input\":" input "}"

#define ANY_PARAM ((const char *)1)  /* do not check param */

enum gen {
	GEN_NONE = 0,     /* body is the text itself */
	GEN_MODEL_255,    /* chat with a 255-character model */
	GEN_MODEL_256,    /* chat with a 256-character model */
	GEN_MODEL_300,    /* chat with a 300-character model */
	GEN_DEEP_100,     /* chat with an extra field nested 100 levels */
	GEN_DEEP_30,      /* chat with an extra field nested 30 levels */
	GEN_DEEP_24,      /* chat with an extra field nested 24 levels */
	GEN_DEEP_63,      /* 63 levels: with the body's own, 64, json-c's limit */
	GEN_DEEP_64,      /* one more: past it */
	GEN_INPUTS_2048,  /* embeddings with 2048 strings */
	GEN_INPUTS_2049,  /* embeddings with 2049 strings */
	GEN_TOKENS_2049,  /* embeddings with 2049 tokens (one token array) */
	GEN_NUL_AFTER,    /* a valid chat body, then a NUL byte */
	GEN_NUL_INSIDE    /* a chat body with a raw NUL in a string */
};

static const struct {
	const char *why;
	enum mg_endpoint ep;
	const char *body;
	enum gen gen;
	enum mg_err rc;
	const char *param;   /* on failure; ANY_PARAM: not checked */
	const char *model;   /* on success */
	int stream, include_usage, want_base64;
} cases[] = {
	/* not JSON at all */
	{ "empty body", MG_EP_CHAT, "", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "only spaces", MG_EP_CHAT, "  \r\n\t ", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "not JSON", MG_EP_CHAT, "model=gpt-4o&messages=hi", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "truncated", MG_EP_CHAT, "{\"model\":\"m\"," MSGS, 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "trailing garbage", MG_EP_CHAT, CHAT_OK " x", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "two objects", MG_EP_CHAT, CHAT_OK CHAT_OK, 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "trailing comma", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",}", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "single quotes", MG_EP_CHAT, "{'model':'m'," MSGS "}", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "NUL byte after the object", MG_EP_CHAT, NULL, GEN_NUL_AFTER, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "nesting 100 levels", MG_EP_CHAT, NULL, GEN_DEEP_100, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	/* JSON, but not an object */
	{ "JSON array", MG_EP_CHAT, "[" CHAT_OK "]", 0, MG_ERR_INVALID, NULL, NULL, 0, 0, 0 },
	{ "JSON string", MG_EP_CHAT, "\"hello\"", 0, MG_ERR_INVALID, NULL, NULL, 0, 0, 0 },
	{ "JSON array (embeddings)", MG_EP_EMBEDDINGS, "[1,2]", 0, MG_ERR_INVALID, NULL, NULL, 0, 0, 0 },
	/* model */
	{ "missing model", MG_EP_CHAT, "{" MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model null", MG_EP_CHAT, "{\"model\":null," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model not string", MG_EP_CHAT, "{\"model\":4," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model object", MG_EP_CHAT, "{\"model\":{\"id\":\"m\"}," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "empty model", MG_EP_CHAT, "{\"model\":\"\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model 300 chars", MG_EP_CHAT, NULL, GEN_MODEL_300, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model 256 chars", MG_EP_CHAT, NULL, GEN_MODEL_256, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model 255 chars", MG_EP_CHAT, NULL, GEN_MODEL_255, MG_OK, NULL, NULL, 0, 0, 0 },
	/* the model goes into rows and logs: printable UTF-8 only (these
	 * reached the upstream and the usage rows, or failed in Postgres as
	 * a 503, before) */
	{ "model with CR LF escaped", MG_EP_CHAT, "{\"model\":\"a\\r\\nX-Injected: 1\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with CR LF raw", MG_EP_CHAT, "{\"model\":\"a\r\nX-Injected: 1\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with a tab", MG_EP_CHAT, "{\"model\":\"a\\tb\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with ESC", MG_EP_CHAT, "{\"model\":\"a\\u001b[2J\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with DEL", MG_EP_CHAT, "{\"model\":\"a\x7f\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with a C1 control", MG_EP_CHAT, "{\"model\":\"a\\u009b\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with U+2028", MG_EP_CHAT, "{\"model\":\"a\\u2028b\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with 0xff", MG_EP_CHAT, "{\"model\":\"a\xff\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with a broken pair", MG_EP_CHAT, "{\"model\":\"a\xc3(\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with an overlong /", MG_EP_CHAT, "{\"model\":\"a\xc0\xaf\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with a surrogate", MG_EP_CHAT, "{\"model\":\"a\xed\xa0\x80\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "embeddings model with LF", MG_EP_EMBEDDINGS, "{\"model\":\"a\\n\",\"input\":\"x\"}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model in UTF-8", MG_EP_CHAT, "{\"model\":\"caf\xc3\xa9/\\u00e9\"," MSGS "}", 0, MG_OK, NULL, "caf\xc3\xa9/\xc3\xa9", 0, 0, 0 },
	{ "model with a lone surrogate escape (U+FFFD)", MG_EP_CHAT, "{\"model\":\"a\\ud800\"," MSGS "}", 0, MG_OK, NULL, "a\xef\xbf\xbd", 0, 0, 0 },
	{ "missing model (embeddings)", MG_EP_EMBEDDINGS, "{\"input\":\"x\"}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	/* messages */
	{ "missing messages", MG_EP_CHAT, "{\"model\":\"m\"}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "messages null", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":null}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "messages not array", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":{\"role\":\"user\"}}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "messages a string", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":\"hi\"}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "empty messages", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[]}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "message not object", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[\"hi\"]}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "message null", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[null]}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "message without role", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "role not string", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":1,\"content\":\"hi\"}]}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "second message bad", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"},[]]}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "chat body sent to embeddings", MG_EP_EMBEDDINGS, CHAT_OK, 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	/* stream */
	{ "stream not boolean (string)", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":\"true\"}", 0, MG_ERR_INVALID, "stream", NULL, 0, 0, 0 },
	{ "stream not boolean (number)", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":1}", 0, MG_ERR_INVALID, "stream", NULL, 0, 0, 0 },
	{ "stream true", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true}", 0, MG_OK, NULL, "m", 1, 0, 0 },
	{ "stream false", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":false}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "stream null", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":null}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "stream_options not object", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":true}", 0, MG_ERR_INVALID, "stream_options", NULL, 0, 0, 0 },
	{ "stream_options array", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":[]}", 0, MG_ERR_INVALID, "stream_options", NULL, 0, 0, 0 },
	{ "include_usage true", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", 0, MG_OK, NULL, "m", 1, 1, 0 },
	{ "include_usage false", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":{\"include_usage\":false}}", 0, MG_OK, NULL, "m", 1, 0, 0 },
	{ "stream_options empty", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":{}}", 0, MG_OK, NULL, "m", 1, 0, 0 },
	{ "include_usage not boolean", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":{\"include_usage\":\"yes\"}}", 0, MG_ERR_INVALID, ANY_PARAM, NULL, 0, 0, 0 },
	/* members named twice (json-c keeps the last), escaped names and values */
	{ "model twice", MG_EP_CHAT, "{\"model\":\"a\",\"model\":\"b\"," MSGS "}", 0, MG_OK, NULL, "b", 0, 0, 0 },
	{ "model twice, the first invalid", MG_EP_CHAT, "{\"model\":4,\"model\":\"b\"," MSGS "}", 0, MG_OK, NULL, "b", 0, 0, 0 },
	{ "model twice, the last invalid", MG_EP_CHAT, "{\"model\":\"a\",\"model\":4," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model with escaped slash", MG_EP_CHAT, "{\"model\":\"openai\\/gpt-4o-mini\"," MSGS "}", 0, MG_OK, NULL, "openai/gpt-4o-mini", 0, 0, 0 },
	{ "model with \\u escapes", MG_EP_CHAT, "{\"model\":\"\\u006d\\u00e9\\u20ac\"," MSGS "}", 0, MG_OK, NULL, "m\xc3\xa9\xe2\x82\xac", 0, 0, 0 },
	{ "model with a surrogate pair", MG_EP_CHAT, "{\"model\":\"m\\ud83d\\ude00\"," MSGS "}", 0, MG_OK, NULL, "m\xf0\x9f\x98\x80", 0, 0, 0 },
	{ "model with \\u0000", MG_EP_CHAT, "{\"model\":\"a\\u0000b\"," MSGS "}", 0, MG_ERR_INVALID, "model", NULL, 0, 0, 0 },
	{ "model in UTF-8", MG_EP_CHAT, "{\"model\":\"mod\xc3\xa8le\"," MSGS "}", 0, MG_OK, NULL, "mod\xc3\xa8le", 0, 0, 0 },
	{ "escaped member name", MG_EP_CHAT, "{\"mod\\u0065l\":\"x\"," MSGS "}", 0, MG_OK, NULL, "x", 0, 0, 0 },
	{ "escaped member name, named twice", MG_EP_CHAT, "{\"model\":\"a\",\"mod\\u0065l\":\"x\"," MSGS "}", 0, MG_OK, NULL, "x", 0, 0, 0 },
	{ "role twice, the last not a string", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"role\":1}]}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "role twice, the last a string", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":1,\"role\":\"user\"}]}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "escaped role name", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"r\\u006fle\":\"user\"}]}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "messages twice", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[]," MSGS "}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "stream twice", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream\":false}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "include_usage twice", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":{\"include_usage\":false,\"include_usage\":true}}", 0, MG_OK, NULL, "m", 1, 1, 0 },
	{ "stream_options null", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":null}", 0, MG_OK, NULL, "m", 1, 0, 0 },
	{ "include_usage null", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":true,\"stream_options\":{\"include_usage\":null}}", 0, MG_OK, NULL, "m", 1, 0, 0 },
	{ "control character in a string", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\x01b\"}]}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "bytes that are not UTF-8", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "leading zero", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"temperature\":01}", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "upper-case literal", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"stream\":TRUE}", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "comment", MG_EP_CHAT, "{\"model\":\"m\"," MSGS "/* c */}", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "input twice", MG_EP_EMBEDDINGS, "{\"model\":\"e\",\"input\":[],\"input\":\"x\"}", 0, MG_OK, NULL, "e", 0, 0, 0 },
	{ "input with escapes", MG_EP_EMBEDDINGS, EMB("[\"\\u0000\",\"\\n\"]"), 0, MG_OK, NULL, "openai/text-embedding-3-small", 0, 0, 0 },
	{ "encoding_format escaped", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"base\\u0036\\u0034\"}", 0, MG_OK, NULL, "e", 0, 0, 1 },
	{ "encoding_format twice", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"base64\",\"encoding_format\":\"float\"}", 0, MG_OK, NULL, "e", 0, 0, 0 },
	{ "nesting 24 levels", MG_EP_CHAT, NULL, GEN_DEEP_24, MG_OK, NULL, "m", 0, 0, 0 },
	{ "nesting 64 levels", MG_EP_CHAT, NULL, GEN_DEEP_63, MG_OK, NULL, "m", 0, 0, 0 },
	{ "nesting 65 levels", MG_EP_CHAT, NULL, GEN_DEEP_64, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "model with a lone surrogate", MG_EP_CHAT, "{\"model\":\"m\\ud800x\"," MSGS "}", 0, MG_OK, NULL, "m\xef\xbf\xbdx", 0, 0, 0 },
	{ "model with two high surrogates", MG_EP_CHAT, "{\"model\":\"\\ud83d\\ud83d\\ude00\"," MSGS "}", 0, MG_OK, NULL, "\xef\xbf\xbd\xf0\x9f\x98\x80", 0, 0, 0 },
	{ "escaped model name, not a match", MG_EP_CHAT, "{\"model\":\"m\",\"mode\\u006c2\":4," MSGS "}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "messages twice, the last with a bad role", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"messages\":[{\"role\":2}]}", 0, MG_ERR_INVALID, "messages", NULL, 0, 0, 0 },
	{ "messages twice, the first with a bad role", MG_EP_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":2}]," MSGS "}", 0, MG_OK, NULL, "m", 0, 0, 0 },
	{ "input twice, the first of bad kind", MG_EP_EMBEDDINGS, "{\"model\":\"e\",\"input\":[true],\"input\":[1,2]}", 0, MG_OK, NULL, "e", 0, 0, 0 },
	{ "NaN, which RFC 8259 has not", MG_EP_CHAT, "{\"model\":\"m\"," MSGS ",\"temperature\":NaN}", 0, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	{ "NUL byte inside a string", MG_EP_CHAT, NULL, GEN_NUL_INSIDE, MG_ERR_JSON, NULL, NULL, 0, 0, 0 },
	/* valid chat */
	{ "valid chat", MG_EP_CHAT, CHAT_OK, 0, MG_OK, NULL, "openai/gpt-4o-mini", 0, 0, 0 },
	{ "valid chat, trailing whitespace", MG_EP_CHAT, CHAT_OK " \r\n\t", 0, MG_OK, NULL, "openai/gpt-4o-mini", 0, 0, 0 },
	{ "valid chat with extra unknown fields", MG_EP_CHAT,
	  "{\"temperature\":0.2,\"model\":\"gpt-4o\",\"x_vendor\":{\"a\":[1,{\"b\":null}]},"
	  "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}],"
	  "\"tools\":[],\"max_tokens\":5,\"user\":\"u1\"}", 0, MG_OK, NULL, "gpt-4o", 0, 0, 0 },
	{ "nesting 30 levels", MG_EP_CHAT, NULL, GEN_DEEP_30, MG_OK, NULL, "m", 0, 0, 0 },
	/* embeddings: input */
	{ "input string", MG_EP_EMBEDDINGS, EMB("\"hello\""), 0, MG_OK, NULL, "openai/text-embedding-3-small", 0, 0, 0 },
	{ "input empty string", MG_EP_EMBEDDINGS, EMB("\"\""), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input array of strings", MG_EP_EMBEDDINGS, EMB("[\"a\",\"b\",\"c\"]"), 0, MG_OK, NULL, "openai/text-embedding-3-small", 0, 0, 0 },
	{ "input empty array", MG_EP_EMBEDDINGS, EMB("[]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input array with empty string", MG_EP_EMBEDDINGS, EMB("[\"a\",\"\"]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input token array", MG_EP_EMBEDDINGS, EMB("[1,2,3]"), 0, MG_OK, NULL, "openai/text-embedding-3-small", 0, 0, 0 },
	{ "input array of token arrays", MG_EP_EMBEDDINGS, EMB("[[1,2],[3]]"), 0, MG_OK, NULL, "openai/text-embedding-3-small", 0, 0, 0 },
	{ "input array with empty token array", MG_EP_EMBEDDINGS, EMB("[[1,2],[]]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input mixed string and token", MG_EP_EMBEDDINGS, EMB("[\"a\",1]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input mixed token and string", MG_EP_EMBEDDINGS, EMB("[1,\"a\"]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	/* Regression test, once wrong in lib/request.c check_embeddings() accepts an array mixing strings
	 * and token arrays, which is none of the four shapes its own error
	 * message lists (string, strings, integers, integer arrays). */
	{ "input mixed token array and string", MG_EP_EMBEDDINGS, EMB("[[1,2],\"a\"]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input float tokens", MG_EP_EMBEDDINGS, EMB("[1,2.5]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input booleans", MG_EP_EMBEDDINGS, EMB("[true]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input array of nulls", MG_EP_EMBEDDINGS, EMB("[null]"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input number", MG_EP_EMBEDDINGS, EMB("42"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input object", MG_EP_EMBEDDINGS, EMB("{\"text\":\"hi\"}"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input null", MG_EP_EMBEDDINGS, EMB("null"), 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input missing", MG_EP_EMBEDDINGS, "{\"model\":\"e\"}", 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input 2048 items", MG_EP_EMBEDDINGS, NULL, GEN_INPUTS_2048, MG_OK, NULL, "e", 0, 0, 0 },
	{ "input 2049 items", MG_EP_EMBEDDINGS, NULL, GEN_INPUTS_2049, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	{ "input 2049 tokens", MG_EP_EMBEDDINGS, NULL, GEN_TOKENS_2049, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
	/* embeddings: encoding_format */
	{ "encoding_format base64", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"base64\"}", 0, MG_OK, NULL, "e", 0, 0, 1 },
	{ "encoding_format float", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"float\"}", 0, MG_OK, NULL, "e", 0, 0, 0 },
	{ "encoding_format null", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":null}", 0, MG_OK, NULL, "e", 0, 0, 0 },
	{ "encoding_format hex", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"hex\"}", 0, MG_ERR_INVALID, "encoding_format", NULL, 0, 0, 0 },
	{ "encoding_format BASE64", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":\"BASE64\"}", 0, MG_ERR_INVALID, "encoding_format", NULL, 0, 0, 0 },
	{ "encoding_format number", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":\"x\",\"encoding_format\":1}", 0, MG_ERR_INVALID, "encoding_format", NULL, 0, 0, 0 },
	{ "encoding_format with an input error", MG_EP_EMBEDDINGS,
	  "{\"model\":\"e\",\"input\":[],\"encoding_format\":\"base64\"}", 0, MG_ERR_INVALID, "input", NULL, 0, 0, 0 },
};

/* The body of a generated case, malloc'd; *len its length. */
static char *
generate(enum gen g, size_t *len)
{
	size_t cap = 64 * 1024, n = 0, i;
	char *b = malloc(cap), *m;
	int depth = 0;

	ck_assert_ptr_nonnull(b);
	b[0] = '\0';
	switch (g) {
	case GEN_MODEL_255:
	case GEN_MODEL_256:
	case GEN_MODEL_300:
		m = mg_unit_repeat('m', g == GEN_MODEL_255 ? 255 : g == GEN_MODEL_256 ? 256 : 300);
		n = (size_t)snprintf(b, cap, "{\"model\":\"%s\"," MSGS "}", m);
		free(m);
		break;
	case GEN_DEEP_100:
	case GEN_DEEP_30:
	case GEN_DEEP_24:
	case GEN_DEEP_63:
	case GEN_DEEP_64:
		depth = g == GEN_DEEP_100 ? 100 : g == GEN_DEEP_30 ? 30 : g == GEN_DEEP_63 ? 63 :
		    g == GEN_DEEP_64 ? 64 : 24;
		n = (size_t)snprintf(b, cap, "{\"model\":\"m\"," MSGS ",\"x\":");
		for (i = 0; i < (size_t)depth; i++)
			b[n++] = '[';
		for (i = 0; i < (size_t)depth; i++)
			b[n++] = ']';
		b[n++] = '}';
		b[n] = '\0';
		break;
	case GEN_INPUTS_2048:
	case GEN_INPUTS_2049:
	case GEN_TOKENS_2049:
		n = (size_t)snprintf(b, cap, "{\"model\":\"e\",\"input\":[");
		for (i = 0; i < (g == GEN_INPUTS_2048 ? 2048u : 2049u); i++)
			n += (size_t)snprintf(b + n, cap - n, "%s%s", i ? "," : "",
			    g == GEN_TOKENS_2049 ? "7" : "\"w\"");
		n += (size_t)snprintf(b + n, cap - n, "]}");
		break;
	case GEN_NUL_AFTER:
		n = (size_t)snprintf(b, cap, "%s", CHAT_OK);
		b[n++] = '\0';
		break;
	case GEN_NUL_INSIDE:
		n = (size_t)snprintf(b, cap, "{\"model\":\"m\"," MSGS ",\"user\":\"a");
		b[n++] = '\0';
		n += (size_t)snprintf(b + n, cap - n, "b\"}");
		break;
	case GEN_NONE:
		break;
	}
	ck_assert_uint_lt(n, cap);
	*len = n;
	return b;
}

START_TEST(parse_table)
{
	struct mg_call c;
	struct mg_apierror e;
	const char *body = cases[_i].body;
	char *gen = NULL;
	size_t len;
	enum mg_err rc;

	if (cases[_i].gen != GEN_NONE) {
		gen = generate(cases[_i].gen, &len);
		body = gen;
	} else {
		len = strlen(body);
	}
	memset(&e, 0, sizeof(e));
	memset(&c, 0x5a, sizeof(c));
	rc = mg_request_parse(cases[_i].ep, body, len, &c, &e);
	if (rc != cases[_i].rc) {
		/* free before failing, so nothing leaks */
		if (rc == MG_OK)
			mg_call_free(&c);
		free(gen);
	}
	ck_assert_msg(rc == cases[_i].rc, "%s: rc %d (%s), want %d (%s); message '%s'", cases[_i].why,
	    rc, mg_strerror(rc), cases[_i].rc, mg_strerror(cases[_i].rc), e.message);
	ck_assert_int_eq(c.endpoint, cases[_i].ep);
	if (rc == MG_OK) {
		ck_assert_msg(c.model[0] != '\0', "%s: no model", cases[_i].why);
		if (cases[_i].model != NULL)
			ck_assert_str_eq(c.model, cases[_i].model);
		else
			ck_assert_uint_eq(strlen(c.model), 255);
		ck_assert_msg(c.stream == cases[_i].stream, "%s: stream %d", cases[_i].why, c.stream);
		ck_assert_msg(c.include_usage == cases[_i].include_usage, "%s: include_usage %d",
		    cases[_i].why, c.include_usage);
		ck_assert_msg(c.want_base64 == cases[_i].want_base64, "%s: want_base64 %d",
		    cases[_i].why, c.want_base64);
	} else {
		ck_assert_int_eq(e.status, 400);
		ck_assert_str_eq(e.type, "invalid_request_error");
		ck_assert_msg(e.message[0] != '\0', "%s: no message", cases[_i].why);
		if (cases[_i].param != ANY_PARAM) {
			if (cases[_i].param == NULL)
				ck_assert_msg(e.param == NULL, "%s: param '%s', want none", cases[_i].why, e.param);
			else
				ck_assert_msg(e.param != NULL && strcmp(e.param, cases[_i].param) == 0,
				    "%s: param '%s', want '%s'", cases[_i].why,
				    e.param ? e.param : "(null)", cases[_i].param);
		}
		ck_assert_str_eq(c.model, "");
	}
	/* safe after success and after failure, and twice */
	mg_call_free(&c);
	ck_assert_ptr_null(c.usage_body);
	mg_call_free(&c);
	free(gen);
}
END_TEST

/* The body is len bytes: what follows is not read. */
START_TEST(parse_honours_len)
{
	static const char body[] = CHAT_OK "garbage that is not part of the body";
	struct mg_call c;
	struct mg_apierror e;

	ck_assert_int_eq(mg_request_parse(MG_EP_CHAT, body, strlen(CHAT_OK), &c, &e), MG_OK);
	ck_assert_str_eq(c.model, "openai/gpt-4o-mini");
	mg_call_free(&c);
	/* one byte short of the closing brace is not JSON */
	ck_assert_int_eq(mg_request_parse(MG_EP_CHAT, body, strlen(CHAT_OK) - 1, &c, &e), MG_ERR_JSON);
	mg_call_free(&c);
}
END_TEST

/* A stream that did not ask for usage is sent asking for it: the body's
 * bytes as they came, with include_usage set to true in one place. */
#define STREAM_HEAD "{\"model\":\"m\"," MSGS ",\"stream\":true"
static const struct {
	const char *body;
	const char *sent;   /* NULL: the body itself */
} usage_bodies[] = {
	{ STREAM_HEAD "}", "{\"stream_options\":{\"include_usage\":true},\"model\":\"m\"," MSGS ",\"stream\":true}" },
	{ " \n{\"model\":\"m\"," MSGS ",\"stream\":true} ",
	  " \n{\"stream_options\":{\"include_usage\":true},\"model\":\"m\"," MSGS ",\"stream\":true} " },
	{ STREAM_HEAD ",\"stream_options\":null}", STREAM_HEAD ",\"stream_options\":{\"include_usage\":true}}" },
	{ STREAM_HEAD ",\"stream_options\":{}}", STREAM_HEAD ",\"stream_options\":{\"include_usage\":true}}" },
	{ STREAM_HEAD ",\"stream_options\":{ }}", STREAM_HEAD ",\"stream_options\":{\"include_usage\":true }}" },
	{ STREAM_HEAD ",\"stream_options\":{\"x\":1}}", STREAM_HEAD ",\"stream_options\":{\"include_usage\":true,\"x\":1}}" },
	{ STREAM_HEAD ",\"stream_options\":{\"include_usage\":false}}", STREAM_HEAD ",\"stream_options\":{\"include_usage\":true}}" },
	{ STREAM_HEAD ",\"stream_options\":{\"include_usage\" : null ,\"x\":[1]}}",
	  STREAM_HEAD ",\"stream_options\":{\"include_usage\" : true ,\"x\":[1]}}" },
	{ STREAM_HEAD ",\"stream_options\":{\"include_usage\":true,\"include_usage\":false}}",
	  STREAM_HEAD ",\"stream_options\":{\"include_usage\":true,\"include_usage\":true}}" },
	{ STREAM_HEAD ",\"stream_opti\\u006fns\":{\"include_usage\":false}}",
	  STREAM_HEAD ",\"stream_opti\\u006fns\":{\"include_usage\":true}}" },
	{ STREAM_HEAD ",\"stream_options\":{\"include_usage\":false},\"stream_options\":{\"a\":1}}",
	  STREAM_HEAD ",\"stream_options\":{\"include_usage\":false},\"stream_options\":{\"include_usage\":true,\"a\":1}}" },
	{ STREAM_HEAD ",\"stream_options\":{\"a\":1},\"stream_options\":null}",
	  STREAM_HEAD ",\"stream_options\":{\"a\":1},\"stream_options\":{\"include_usage\":true}}" },
	{ STREAM_HEAD ",\"stream_options\":{\"include_usage\":true}}", NULL },
	{ CHAT_OK, NULL },
	{ "{\"model\":\"m\"," MSGS ",\"stream\":false,\"stream_options\":{}}", NULL },
};

START_TEST(usage_body)
{
	const char *body = usage_bodies[_i].body, *sent;
	struct mg_call c;
	struct mg_apierror e;
	size_t len = strlen(body);
	json_object *root, *so, *iu;

	ck_assert_int_eq(mg_request_parse(MG_EP_CHAT, body, len, &c, &e), MG_OK);
	sent = mg_call_usage_body(&c, body, &len);
	if (usage_bodies[_i].sent == NULL) {
		ck_assert_ptr_eq(sent, body);
		ck_assert_uint_eq(len, strlen(body));
	} else {
		ck_assert_str_eq(sent, usage_bodies[_i].sent);
		ck_assert_uint_eq(len, strlen(usage_bodies[_i].sent));
		/* made once, owned by the call */
		ck_assert_ptr_eq(mg_call_usage_body(&c, body, &len), sent);
		/* what the upstream reads: include_usage true, as json-c reads it */
		root = json_tokener_parse(sent);
		ck_assert_ptr_nonnull(root);
		ck_assert(json_object_object_get_ex(root, "stream_options", &so));
		ck_assert(json_object_object_get_ex(so, "include_usage", &iu));
		ck_assert(json_object_is_type(iu, json_type_boolean) && json_object_get_boolean(iu));
		json_object_put(root);
	}
	mg_call_free(&c);
	ck_assert_ptr_null(c.usage_body);
	mg_call_free(NULL);
}
END_TEST

/* The larger of max_tokens and max_completion_tokens bounds the output. */
static const struct {
	const char *fields;
	enum mg_err rc;
	long long max_output;
} max_outputs[] = {
	{ "", MG_OK, -1 },
	{ ",\"max_tokens\":null", MG_OK, -1 },
	{ ",\"max_tokens\":1", MG_OK, 1 },
	{ ",\"max_tokens\":100000000", MG_OK, 100000000 },
	{ ",\"max_tokens\":100000001", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":0", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":-0", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":-5", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":5.0", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":1e3", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":\"5\"", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":99999999999999999999999", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":-99999999999999999999999", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":1000000000000000000", MG_ERR_INVALID, 0 },
	{ ",\"max_tokens\":7,\"max_completion_tokens\":9", MG_OK, 9 },
	{ ",\"max_completion_tokens\":9,\"max_tokens\":70", MG_OK, 70 },
	{ ",\"max_completion_tokens\":null,\"max_tokens\":70", MG_OK, 70 },
	{ ",\"max_tokens\":7,\"max_tokens\":8", MG_OK, 8 },
	{ ",\"max_tokens\":\"x\",\"max_tokens\":8", MG_OK, 8 },
};

START_TEST(parse_max_output)
{
	struct mg_call c;
	struct mg_apierror e;
	char body[512];
	enum mg_err rc;

	snprintf(body, sizeof(body), "{\"model\":\"m\"," MSGS "%s}", max_outputs[_i].fields);
	rc = mg_request_parse(MG_EP_CHAT, body, strlen(body), &c, &e);
	ck_assert_msg(rc == max_outputs[_i].rc, "%s: rc %d", body, rc);
	if (rc == MG_OK)
		ck_assert_msg(c.max_output == max_outputs[_i].max_output, "%s: max_output %lld", body,
		    c.max_output);
	mg_call_free(&c);
}
END_TEST

START_TEST(endpoint_names)
{
	ck_assert_str_eq(mg_endpoint_name(MG_EP_CHAT), "chat.completions");
	ck_assert_str_eq(mg_endpoint_name(MG_EP_EMBEDDINGS), "embeddings");
}
END_TEST

/* The body an upstream gets: the model replaced, "models" left out, usage
 * asked for; the result parses, as JSON, to the expected text. */
static const struct {
	const char *body, *sent, *want;
	int n_alt;
} sent_bodies[] = {
	{ "{\"model\":\"openai/m\"," MSGS "}", "m", "{\"model\":\"m\"," MSGS "}", 0 },
	{ "{\"model\":\"openai/m\"," MSGS "}", "openai/m", "{\"model\":\"openai/m\"," MSGS "}", 0 },
	{ "{\"model\":\"a\",\"models\":[\"a\",\"b\"]," MSGS "}", "a",
	  "{\"model\":\"a\"," MSGS "}", 1 },
	{ "{ \"models\" : [\"b\", \"c\"] , \"model\":\"a\"," MSGS "}", "b;x=\"1\\",
	  "{\"model\":\"b;x=\\\"1\\\\\"," MSGS "}", 2 },
	{ "{\"model\":\"a\"," MSGS ",\"models\":null}", "z", "{\"model\":\"z\"," MSGS "}", 0 },
	{ "{\"models\":[\"b\"],\"model\":\"a\"," MSGS ",\"stream\":true}", "b",
	  "{\"stream_options\":{\"include_usage\":true},\"model\":\"b\"," MSGS ",\"stream\":true}", 1 },
};

START_TEST(sent_body)
{
	struct mg_call c;
	struct mg_apierror e;
	const char *body = sent_bodies[_i].body, *out;
	size_t len = strlen(body);
	json_object *got, *want;

	ck_assert_int_eq(mg_request_parse(MG_EP_CHAT, body, len, &c, &e), MG_OK);
	ck_assert_int_eq(c.n_alt, sent_bodies[_i].n_alt);
	out = mg_call_body(&c, body, &len, sent_bodies[_i].sent);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(strlen(out), len);
	got = json_tokener_parse(out);
	ck_assert_msg(got != NULL, "not JSON: %s", out);
	want = json_tokener_parse(sent_bodies[_i].want);
	ck_assert_ptr_nonnull(want);
	ck_assert_msg(json_object_equal(got, want), "got %s", out);
	json_object_put(got);
	json_object_put(want);
	mg_call_free(&c);
}
END_TEST

START_TEST(models_refused)
{
	static const char *const bodies[] = {
		"{\"model\":\"a\",\"models\":\"b\"," MSGS "}",
		"{\"model\":\"a\",\"models\":[1]," MSGS "}",
		"{\"model\":\"a\",\"models\":[\"\"]," MSGS "}",
		"{\"model\":\"a\",\"models\":[\"b\",\"c\",\"d\",\"e\",\"f\"]," MSGS "}",
		"{\"model\":\"a\",\"models\":[],\"models\":[]," MSGS "}",
	};
	struct mg_call c;
	struct mg_apierror e;
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		ck_assert_msg(mg_request_parse(MG_EP_CHAT, bodies[i], strlen(bodies[i]), &c, &e) ==
		    MG_ERR_INVALID, "%s", bodies[i]);
		ck_assert_str_eq(e.param, "models");
	}
}
END_TEST

static Suite *
request_suite(void)
{
	Suite *s = suite_create("request");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, parse_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, parse_honours_len);
	tcase_add_loop_test(tc, usage_body, 0, (int)(sizeof(usage_bodies) / sizeof(usage_bodies[0])));
	tcase_add_loop_test(tc, parse_max_output, 0, (int)(sizeof(max_outputs) / sizeof(max_outputs[0])));
	tcase_add_test(tc, endpoint_names);
	tcase_add_loop_test(tc, sent_body, 0, (int)(sizeof(sent_bodies) / sizeof(sent_bodies[0])));
	tcase_add_test(tc, models_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(request_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
