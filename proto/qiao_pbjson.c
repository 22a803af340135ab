/*
 * qiao_pbjson.c - descriptor-driven protobuf <-> JSON (see qiao_pbjson.h).
 */
#include "qiao_pbjson.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qiao_err.h"

#define MAX_DEPTH 32

uint8_t *qiao_pb_pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *b = malloc(*len ? *len : 1);
	if (b)
		protobuf_c_message_pack(m, b);
	return b;
}

const ProtobufCFieldDescriptor *qiao_pb_field(const ProtobufCMessageDescriptor *d, const char *name)
{
	return protobuf_c_message_descriptor_get_field_by_name(d, name);
}

/* ---- to JSON ---------------------------------------------------------------- */

static json_t *s_value(const ProtobufCFieldDescriptor *f, const void *p, int depth);

static json_t *s_msg(const ProtobufCMessage *m, int depth)
{
	json_t *o = json_object();
	if (!o || depth > MAX_DEPTH)
		return o;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m + f->offset;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which = *(const uint32_t *)((const char *)m + f->quantifier_offset);
			if (which != f->id)
				continue;
		}
		json_t *v = NULL;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			v = json_array();
			size_t sz;
			switch (f->type) {
			case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
			case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_ENUM:
			case PROTOBUF_C_TYPE_FLOAT:
				sz = 4;
				break;
			case PROTOBUF_C_TYPE_BOOL:
				sz = sizeof(protobuf_c_boolean);
				break;
			case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
				sz = sizeof(void *);
				break;
			case PROTOBUF_C_TYPE_BYTES:
				sz = sizeof(ProtobufCBinaryData);
				break;
			default:
				sz = 8;
				break;
			}
			const char *arr = *(const char *const *)base;
			for (size_t k = 0; v && arr && k < n; k++)
				json_array_append_new(v, s_value(f, arr + k * sz, depth));
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)base;
			if (!sub)
				continue;
			v = s_msg(sub, depth + 1);
		} else {
			v = s_value(f, base, depth);
		}
		json_object_set_new(o, f->name, v ? v : json_null());
	}
	return o;
}

static json_t *s_value(const ProtobufCFieldDescriptor *f, const void *p, int depth)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
		uint64_t u = *(const uint64_t *)p;
		if (u <= INT64_MAX)
			return json_integer((json_int_t)u);
		char b[24];
		snprintf(b, sizeof b, "%" PRIu64, u);
		return json_string(b);
	}
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
		return ev ? json_string(ev->name) : json_integer(v);
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;
		return json_string(s ? s : "");
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		size_t n = sodium_base64_ENCODED_LEN(b->len, sodium_base64_VARIANT_ORIGINAL);
		char *t = malloc(n);
		if (!t)
			return NULL;
		sodium_bin2base64(t, n, b->data ? b->data : (const uint8_t *)"", b->len, sodium_base64_VARIANT_ORIGINAL);
		json_t *s = json_string(t);
		free(t);
		return s;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
		return sub ? s_msg(sub, depth + 1) : json_null();
	}
	}
	return json_null();
}

json_t *qiao_pb_to_json(const ProtobufCMessage *m)
{
	return m ? s_msg(m, 0) : json_null();
}

/* ---- from JSON -------------------------------------------------------------- */

struct fctx {
	char *err;
	size_t errlen;
	char path[512];
};

static int s_fail(struct fctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(struct fctx *c, const char *fmt, ...)
{
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s%s%s", c->path, c->path[0] ? ": " : "", why);
	return QIAO_EINVAL;
}

static int s_int_of(struct fctx *c, const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		long long x = strtoll(s, &end, 10);
		if (!*s || *end || errno)
			return s_fail(c, "'%s' is not an integer", s);
		*out = x;
	} else {
		return s_fail(c, "expected an integer");
	}
	if (*out < lo || *out > hi)
		return s_fail(c, "%" PRId64 " is out of range %" PRId64 "..%" PRId64, *out, lo, hi);
	return 0;
}

static int s_build(struct fctx *c, const ProtobufCMessageDescriptor *d, const json_t *j, ProtobufCMessage **out,
		   int depth);

/* One scalar (or message) of field f into p. */
static int s_set(struct fctx *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *p, int depth)
{
	int64_t x;
	int rc;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
		if ((rc = s_int_of(c, v, INT32_MIN, INT32_MAX, &x)) != 0)
			return rc;
		*(int32_t *)p = (int32_t)x;
		return 0;
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		if ((rc = s_int_of(c, v, 0, UINT32_MAX, &x)) != 0)
			return rc;
		*(uint32_t *)p = (uint32_t)x;
		return 0;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		if ((rc = s_int_of(c, v, INT64_MIN, INT64_MAX, &x)) != 0)
			return rc;
		*(int64_t *)p = x;
		return 0;
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		if (json_is_string(v)) {
			const char *s = json_string_value(v);
			char *end;
			errno = 0;
			unsigned long long u = strtoull(s, &end, 10);
			if (!*s || *end || errno || *s == '-')
				return s_fail(c, "'%s' is not an unsigned integer", s);
			*(uint64_t *)p = u;
			return 0;
		}
		if ((rc = s_int_of(c, v, 0, INT64_MAX, &x)) != 0)
			return rc;
		*(uint64_t *)p = (uint64_t)x;
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!json_is_number(v))
			return s_fail(c, "expected a number");
		if (f->type == PROTOBUF_C_TYPE_FLOAT)
			*(float *)p = (float)json_number_value(v);
		else
			*(double *)p = json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return s_fail(c, "expected true or false");
		*(protobuf_c_boolean *)p = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		if (json_is_string(v)) {
			const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
			if (!ev)
				return s_fail(c, "unknown %s value '%s'", ed->name, json_string_value(v));
			*(int *)p = ev->value;
			return 0;
		}
		if ((rc = s_int_of(c, v, INT32_MIN, INT32_MAX, &x)) != 0)
			return rc;
		if (!protobuf_c_enum_descriptor_get_value(ed, (int)x))
			return s_fail(c, "%" PRId64 " is not a value of %s", x, ed->name);
		*(int *)p = (int)x;
		return 0;
	}
	case PROTOBUF_C_TYPE_STRING: {
		if (!json_is_string(v))
			return s_fail(c, "expected a string");
		char *s = strdup(json_string_value(v));
		if (!s)
			return QIAO_ENOMEM;
		*(char **)p = s;
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		if (!json_is_string(v))
			return s_fail(c, "expected a base64 string");
		const char *s = json_string_value(v);
		size_t n = strlen(s);
		uint8_t *b = malloc(n ? n : 1);
		size_t bl = 0;
		if (!b)
			return QIAO_ENOMEM;
		if (sodium_base642bin(b, n ? n : 1, s, n, NULL, &bl, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
			free(b);
			return s_fail(c, "not valid base64");
		}
		ProtobufCBinaryData *bd = p;
		bd->data = b;
		bd->len = bl;
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		return s_build(c, f->descriptor, v, (ProtobufCMessage **)p, depth + 1);
	}
	return s_fail(c, "unsupported field type");
}

static size_t s_elem_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_FLOAT:
		return 4;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 8;
	}
}

static int s_build(struct fctx *c, const ProtobufCMessageDescriptor *d, const json_t *j, ProtobufCMessage **out,
		   int depth)
{
	*out = NULL;
	if (depth > MAX_DEPTH)
		return s_fail(c, "nested too deeply");
	if (!json_is_object(j))
		return s_fail(c, "expected an object (%s)", d->name);
	ProtobufCMessage *m = calloc(1, d->sizeof_message);
	if (!m)
		return QIAO_ENOMEM;
	d->message_init(m);
	size_t plen = strlen(c->path);
	const char *key;
	json_t *v;
	int rc = 0;
	json_object_foreach((json_t *)j, key, v) {
		snprintf(c->path + plen, sizeof c->path - plen, "%s%s", plen ? "." : "", key);
		const ProtobufCFieldDescriptor *f = qiao_pb_field(d, key);
		if (!f) {
			rc = s_fail(c, "%s has no field '%s'", d->name, key);
			break;
		}
		if (json_is_null(v))
			continue;
		char *base = (char *)m + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (!json_is_array(v)) {
				rc = s_fail(c, "expected an array");
				break;
			}
			size_t n = json_array_size(v), sz = s_elem_size(f);
			if (n == 0)
				continue;
			char *arr = calloc(n, sz);
			if (!arr) {
				rc = QIAO_ENOMEM;
				break;
			}
			*(void **)base = arr;
			size_t *np = (size_t *)((char *)m + f->quantifier_offset);
			size_t elen = strlen(c->path);
			for (size_t k = 0; k < n && rc == 0; k++) {
				snprintf(c->path + elen, sizeof c->path - elen, "[%zu]", k);
				rc = s_set(c, f, json_array_get(v, k), arr + k * sz, depth);
				if (rc == 0)
					*np = k + 1;
			}
			if (rc != 0)
				break;
			continue;
		}
		if ((f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)) {
			/* a key given twice: keep the last (free the first) */
			void **pp = (void **)base;
			if (f->type == PROTOBUF_C_TYPE_STRING && *pp && *pp != f->default_value) {
				free(*pp);
				*pp = (void *)f->default_value;
			}
		}
		rc = s_set(c, f, v, base, depth);
		if (rc != 0)
			break;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			*(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
		else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
			 f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
			*(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
	}
	c->path[plen] = '\0';
	if (rc != 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	*out = m;
	return 0;
}

int qiao_pb_from_json(const ProtobufCMessageDescriptor *d, const json_t *j, ProtobufCMessage **out, char *err,
		      size_t errlen)
{
	struct fctx c = {.err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	return s_build(&c, d, j, out, 0);
}
