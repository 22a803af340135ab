/*
 * test_schemas.c - the qiao.v1 wire schemas (the .proto files in proto/)
 * round-trip through protobuf-c.
 *
 * 1. Every message type, driven by its descriptor: fill every field
 *    (every member of every oneof in turn, two elements in every repeated
 *    field, strings with CJK text, negative int64s), pack, unpack, compare
 *    field by field, re-pack to the same bytes, and check that the packed
 *    bytes minus their last byte do not unpack (and that no prefix crashes
 *    the decoder).
 * 2. The table below must name every message declared in proto/, so a
 *    new message cannot skip this test.
 * 3. Hand-built messages with real domain values (带押过户 title summary,
 *    a signed licence, a 行政处罚 in 万元, an audit entry) come back with
 *    the values they went in with, and enums keep the official codes.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "audit.pb-c.h"
#include "bank.pb-c.h"
#include "control.pb-c.h"
#include "credit.pb-c.h"
#include "envelope.pb-c.h"
#include "housing.pb-c.h"
#include "identity.pb-c.h"
#include "licence.pb-c.h"
#include "realestate.pb-c.h"
#include "tax.pb-c.h"
#include "workflow.pb-c.h"

#include "check.h"
#include "qiao_types.h"

/* Every message type, from proto/qiao_types.c (which this test keeps complete). */
#define S_NALL qiao_type_count()

/* No schema nests deeper than this; a deeper one is a schema change to
 * look at, so the filler stops and the completeness check below fails. */
#define S_MAX_DEPTH 8
/* Elements put in every repeated field. */
#define S_NREP 2

/* ------------------------------------------------------------------ */
/* Descriptor-driven filling                                          */

/* Position of oneof member `f` within its oneof, and the oneof's size. */
static void s_oneof_pos(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
			unsigned *pos, unsigned *size)
{
	*pos = 0;
	*size = 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *g = &d->fields[i];
		if (!(g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || g->quantifier_offset != f->quantifier_offset)
			continue;
		if (g == f)
			*pos = *size;
		(*size)++;
	}
}

/* Largest oneof in `d` or in any message it contains (1 when none). */
static unsigned s_max_oneof(const ProtobufCMessageDescriptor *d, int depth)
{
	unsigned best = 1;
	if (depth > S_MAX_DEPTH)
		return best;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			unsigned pos, size;
			s_oneof_pos(d, f, &pos, &size);
			if (size > best)
				best = size;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			unsigned n = s_max_oneof(f->descriptor, depth + 1);
			if (n > best)
				best = n;
		}
	}
	return best;
}

static size_t s_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return sizeof(int32_t);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return sizeof(uint32_t);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return sizeof(int64_t);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

static ProtobufCMessage *s_new_filled(const ProtobufCMessageDescriptor *d, unsigned variant,
				      unsigned *ctr, int depth);

/* Write one non-default value of field `f` at `p`; false when out of
 * memory or too deep. */
static bool s_fill_value(const ProtobufCFieldDescriptor *f, void *p, unsigned variant,
			 unsigned *ctr, int depth)
{
	unsigned c = ++*ctr;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		*(int32_t *)p = (c & 1) ? -(int32_t)(c * 7) : (int32_t)(c * 7);
		return true;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)p = c * 131u;
		return true;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		/* fen amounts and ms instants are large; negative ones take the
		 * 10-byte varint path */
		*(int64_t *)p = (c & 1) ? -(int64_t)c * 1000003 : (int64_t)c * 1700000000123LL;
		return true;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *)p = (uint64_t)c * 0x9E3779B97F4A7C15ULL;
		return true;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)p = (float)c + 0.5f;
		return true;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)p = (double)c + 0.25;
		return true;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = 1;
		return true;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;
		/* skip value 0 (UNSPECIFIED: the default, never on the wire) */
		unsigned nz = 0;
		for (unsigned i = 0; i < e->n_values; i++)
			nz += e->values[i].value != 0;
		if (nz == 0)
			return false;
		unsigned k = c % nz;
		for (unsigned i = 0; i < e->n_values; i++) {
			if (e->values[i].value == 0)
				continue;
			if (k-- == 0) {
				*(int *)p = e->values[i].value;
				return true;
			}
		}
		return false;
	}
	case PROTOBUF_C_TYPE_STRING: {
		char *s = malloc(96);
		if (!s)
			return false;
		snprintf(s, 96, "%s-%u-鄂尔多斯（2025）", f->name, c);
		*(char **)p = s;
		return true;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = p;
		b->len = 1 + c % 64;
		b->data = malloc(b->len);
		if (!b->data)
			return false;
		for (size_t i = 0; i < b->len; i++)
			b->data[i] = (uint8_t)(c * 31 + i * 7);
		return true;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *m = s_new_filled(f->descriptor, variant, ctr, depth + 1);
		*(ProtobufCMessage **)p = m;
		return m != NULL;
	}
	}
	return false;
}

/* A new message of type `d` with every field set (for oneofs, member
 * number `variant` modulo the oneof's size).  Free with
 * protobuf_c_message_free_unpacked(m, NULL): everything is malloc'd. */
static ProtobufCMessage *s_new_filled(const ProtobufCMessageDescriptor *d, unsigned variant,
				      unsigned *ctr, int depth)
{
	if (depth > S_MAX_DEPTH)
		return NULL;
	ProtobufCMessage *m = malloc(d->sizeof_message);
	if (!m)
		return NULL;
	protobuf_c_message_init(d, m);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *base = (char *)m;
		void *p = base + f->offset;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			unsigned pos, size;
			s_oneof_pos(d, f, &pos, &size);
			if (pos != variant % size)
				continue;
			if (!s_fill_value(f, p, variant, ctr, depth))
				goto fail;
			*(uint32_t *)(base + f->quantifier_offset) = f->id;
		} else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t es = s_elem_size(f->type);
			void *arr = calloc(S_NREP, es);
			if (!arr)
				goto fail;
			*(void **)p = arr;
			*(size_t *)(base + f->quantifier_offset) = S_NREP;
			for (size_t k = 0; k < S_NREP; k++) {
				if (!s_fill_value(f, (char *)arr + k * es, variant, ctr, depth))
					goto fail;
			}
		} else {
			if (!s_fill_value(f, p, variant, ctr, depth))
				goto fail;
			if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
				*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
		}
	}
	return m;
fail:
	protobuf_c_message_free_unpacked(m, NULL);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Descriptor-driven comparison                                       */

static bool s_msg_equal(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
			const ProtobufCMessage *b, const char *path);

static bool s_value_equal(const ProtobufCFieldDescriptor *f, const void *x, const void *y,
			  const char *path)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)x, *t = *(char *const *)y;
		return s && t && strcmp(s, t) == 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *s = x, *t = y;
		return s->len == t->len && (s->len == 0 || memcmp(s->data, t->data, s->len) == 0);
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *s = *(ProtobufCMessage *const *)x;
		const ProtobufCMessage *t = *(ProtobufCMessage *const *)y;
		if (!s || !t)
			return s == t;
		return s_msg_equal(f->descriptor, s, t, path);
	}
	default:
		/* fixed-size scalars, including float / double set from
		 * integers + 0.5 / 0.25, which survive exactly */
		return memcmp(x, y, s_elem_size(f->type)) == 0;
	}
}

static bool s_msg_equal(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
			const ProtobufCMessage *b, const char *path)
{
	if (a->descriptor != d || b->descriptor != d) {
		fprintf(stderr, "%s: descriptor differs\n", path);
		return false;
	}
	bool ok = true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *pa = (const char *)a, *pb = (const char *)b;
		char sub[512];
		snprintf(sub, sizeof sub, "%s.%s", path, f->name);
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t ca = *(const uint32_t *)(pa + f->quantifier_offset);
			uint32_t cb = *(const uint32_t *)(pb + f->quantifier_offset);
			if (ca != cb) {
				fprintf(stderr, "%s: oneof case %u != %u\n", sub, ca, cb);
				ok = false;
				continue;
			}
			if (ca != f->id)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t na = *(const size_t *)(pa + f->quantifier_offset);
			size_t nb = *(const size_t *)(pb + f->quantifier_offset);
			if (na != nb) {
				fprintf(stderr, "%s: %zu elements != %zu\n", sub, na, nb);
				ok = false;
				continue;
			}
			const char *xa = *(char *const *)(pa + f->offset);
			const char *xb = *(char *const *)(pb + f->offset);
			size_t es = s_elem_size(f->type);
			for (size_t k = 0; k < na; k++) {
				if (!s_value_equal(f, xa + k * es, xb + k * es, sub)) {
					fprintf(stderr, "%s[%zu]: differs\n", sub, k);
					ok = false;
				}
			}
		} else if (!s_value_equal(f, pa + f->offset, pb + f->offset, sub)) {
			fprintf(stderr, "%s: differs\n", sub);
			ok = false;
		}
	}
	return ok;
}

/* ------------------------------------------------------------------ */
/* Round trip of one filled message                                   */

static void s_roundtrip(const ProtobufCMessageDescriptor *d, unsigned variant)
{
	unsigned ctr = variant * 1000;
	ProtobufCMessage *m = s_new_filled(d, variant, &ctr, 0);
	CHECK(m != NULL);
	if (!m) {
		fprintf(stderr, "%s: could not fill\n", d->name);
		return;
	}
	CHECK(protobuf_c_message_check(m));

	size_t len = protobuf_c_message_get_packed_size(m);
	if (d->n_fields == 0) {
		/* A message without fields (qiao.v1.Empty) is zero bytes on the
		 * wire and decodes from zero bytes. */
		CHECK(len == 0);
		ProtobufCMessage *z = protobuf_c_message_unpack(d, NULL, 0, (const uint8_t *)"");
		CHECK(z != NULL);
		if (z)
			protobuf_c_message_free_unpacked(z, NULL);
		protobuf_c_message_free_unpacked(m, NULL);
		return;
	}
	uint8_t *buf = malloc(len);
	uint8_t *again = malloc(len);
	CHECK(buf != NULL && again != NULL && len > 0);
	if (!buf || !again || len == 0)
		goto out;
	CHECK(protobuf_c_message_pack(m, buf) == len);

	ProtobufCMessage *u = protobuf_c_message_unpack(d, NULL, len, buf);
	CHECK(u != NULL);
	if (u) {
		bool eq = s_msg_equal(d, m, u, d->short_name);
		CHECK(eq);
		if (!eq)
			fprintf(stderr, "%s (variant %u) did not round-trip\n", d->name, variant);
		CHECK(protobuf_c_message_get_packed_size(u) == len);
		CHECK(protobuf_c_message_pack(u, again) == len && memcmp(buf, again, len) == 0);
		protobuf_c_message_free_unpacked(u, NULL);
	}

	/* Dropping the last byte always cuts the last field short: a varint
	 * loses its final byte, a length-delimited field its tail.  Every
	 * shorter prefix must at least decode or fail cleanly. */
	ProtobufCMessage *t = protobuf_c_message_unpack(d, NULL, len - 1, buf);
	CHECK(t == NULL);
	if (t) {
		fprintf(stderr, "%s: truncated buffer (%zu of %zu bytes) unpacked\n", d->name, len - 1, len);
		protobuf_c_message_free_unpacked(t, NULL);
	}
	size_t refused = 0;
	for (size_t k = 0; k + 1 < len; k++) {
		ProtobufCMessage *v = protobuf_c_message_unpack(d, NULL, k, buf);
		if (v)
			protobuf_c_message_free_unpacked(v, NULL);
		else
			refused++;
	}
	/* the empty prefix is a valid empty message; most cuts land inside a
	 * field */
	CHECK(len < 3 || refused > 0);
out:
	free(buf);
	free(again);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_every_message_roundtrips(void)
{
	for (size_t i = 0; i < S_NALL; i++) {
		const ProtobufCMessageDescriptor *d = qiao_type_at(i);
		CHECK(d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
		CHECK(strcmp(d->package_name, "qiao.v1") == 0);
		unsigned variants = s_max_oneof(d, 0);
		for (unsigned v = 0; v < variants; v++)
			s_roundtrip(d, v);
	}
}

/* ------------------------------------------------------------------ */
/* Every message declared in proto/ is in s_all                        */

static bool s_known(const char *name)
{
	for (size_t i = 0; i < S_NALL; i++)
		if (strcmp(qiao_type_at(i)->short_name, name) == 0)
			return true;
	return false;
}

static void test_table_is_complete(void)
{
	for (size_t i = 0; i < S_NALL; i++)
		for (size_t j = i + 1; j < S_NALL; j++)
			CHECK(qiao_type_at(i) != qiao_type_at(j));

	const char *src = getenv("QIAO_SRC");
	if (!src) {
		printf("QIAO_SRC not set; table completeness not checked\n");
		return;
	}
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/proto", src);
	DIR *dh = opendir(dir);
	CHECK(dh != NULL);
	if (!dh)
		return;
	size_t declared = 0;
	struct dirent *de;
	while ((de = readdir(dh)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 7 || strcmp(de->d_name + n - 6, ".proto") != 0)
			continue;
		char path[2048];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		FILE *fp = fopen(path, "r");
		CHECK(fp != NULL);
		if (!fp)
			continue;
		char line[1024];
		while (fgets(line, sizeof line, fp)) {
			char name[128];
			/* top-level messages start in column 0 */
			if (sscanf(line, "message %127[A-Za-z0-9_]", name) != 1)
				continue;
			declared++;
			if (!s_known(name)) {
				fprintf(stderr, "%s: message %s is not in test_schemas.c's table; add it\n",
					de->d_name, name);
				CHECK(0);
			}
		}
		fclose(fp);
	}
	closedir(dh);
	CHECK(declared == S_NALL);
	if (declared != S_NALL)
		fprintf(stderr, "proto/ declares %zu messages, the table names %zu\n", declared, S_NALL);
}

/* ------------------------------------------------------------------ */
/* Hand-built messages with domain values                             */

/* Pack `m`, unpack as `d`; the caller frees the result. */
static ProtobufCMessage *s_pack_unpack(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	protobuf_c_message_pack(m, buf);
	ProtobufCMessage *u = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	free(buf);
	return u;
}

static void test_official_codes(void)
{
	CHECK(QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID == 1);
	CHECK(QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_SUSPENDED == 2);
	CHECK(QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_ANNULLED == 3);
	CHECK(QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_CANCELLED == 4);
	CHECK(QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_EXPIRED == 5);
	CHECK(QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_REVOKED == 7);
	CHECK(QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_RESIDENT_ID == 111);
	CHECK(QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_USCC == 1);
	CHECK(QIAO__V1__MORTGAGE_TYPE__MORTGAGE_TYPE_GENERAL == 1);
	CHECK(QIAO__V1__MORTGAGE_TYPE__MORTGAGE_TYPE_MAXIMUM == 2);
	CHECK(QIAO__V1__SHARING_CLASS__SHARING_CLASS_UNSPECIFIED == 0);
	/* an unassigned official code is not a value */
	CHECK(protobuf_c_enum_descriptor_get_value(&qiao__v1__licence_status__descriptor, 6) == NULL);
	CHECK(protobuf_c_enum_descriptor_get_value(&qiao__v1__licence_status__descriptor, 7) != NULL);
}

/* 带押过户 step 3: a title summary with a seller, a first-rank mortgage of
 * Bank-O, no 查封, no 禁止转让约定. */
static void test_title_summary(void)
{
	Qiao__V1__DataSubject sid = QIAO__V1__DATA_SUBJECT__INIT;
	sid.type = QIAO__V1__SUBJECT_TYPE__RESIDENT_ID;
	sid.id = "15060219850612003X";
	Qiao__V1__Party seller = QIAO__V1__PARTY__INIT;
	seller.name = "张三";
	seller.id = &sid;
	Qiao__V1__RightHolder holder = QIAO__V1__RIGHT_HOLDER__INIT;
	holder.party = &seller;
	Qiao__V1__RightHolder *holders[] = { &holder };

	Qiao__V1__DataSubject bid = QIAO__V1__DATA_SUBJECT__INIT;
	bid.type = QIAO__V1__SUBJECT_TYPE__USCC;
	bid.id = "91150600MA0B56780F";
	Qiao__V1__Party bank_o = QIAO__V1__PARTY__INIT;
	bank_o.name = "鄂尔多斯甲银行";
	bank_o.id = &bid;
	Qiao__V1__Party *mortgagors[] = { &seller };
	Qiao__V1__MortgageEntry mtg = QIAO__V1__MORTGAGE_ENTRY__INIT;
	mtg.proof_no = "蒙(2020)鄂尔多斯市不动产证明第0012345号";
	mtg.rank = 1;
	mtg.mortgagee = &bank_o;
	mtg.n_mortgagors = 1;
	mtg.mortgagors = mortgagors;
	mtg.n_debtors = 1;
	mtg.debtors = mortgagors;
	mtg.mortgage_type = QIAO__V1__MORTGAGE_TYPE__MORTGAGE_TYPE_GENERAL;
	mtg.secured_amount_fen = 80 * 1000000LL; /* 80 万元 */
	mtg.debt_start_date = "2020-05-01";
	mtg.debt_end_date = "2050-04-30";
	mtg.registered_ms = 1588300000000LL;
	Qiao__V1__MortgageEntry *mortgages[] = { &mtg };

	Qiao__V1__TitleSummary ts = QIAO__V1__TITLE_SUMMARY__INIT;
	ts.unit_no = "150602004001GB00001F00010001";
	ts.cert_no = "蒙(2020)鄂尔多斯市不动产权第0054321号";
	ts.location = "东胜区某街道1号楼1单元101";
	ts.building_area_dm2 = 12345; /* 123.45 m² */
	ts.n_holders = 1;
	ts.holders = holders;
	ts.co_ownership = QIAO__V1__CO_OWNERSHIP__CO_OWNERSHIP_SOLE;
	ts.n_mortgages = 1;
	ts.mortgages = mortgages;
	ts.as_of_ms = 1748000000000LL;

	Qiao__V1__TitleSummary *u = (Qiao__V1__TitleSummary *)s_pack_unpack(&ts.base);
	CHECK(u != NULL);
	if (!u)
		return;
	CHECK(strcmp(u->unit_no, "150602004001GB00001F00010001") == 0);
	CHECK(u->n_holders == 1 && strcmp(u->holders[0]->party->id->id, "15060219850612003X") == 0);
	CHECK(u->holders[0]->party->id->type == QIAO__V1__SUBJECT_TYPE__RESIDENT_ID);
	CHECK(u->n_mortgages == 1 && u->mortgages[0]->rank == 1);
	CHECK(u->mortgages[0]->secured_amount_fen == 80000000LL);
	CHECK(strcmp(u->mortgages[0]->mortgagee->id->id, "91150600MA0B56780F") == 0);
	CHECK(!u->seized && !u->objection && !u->transfer_restricted);
	CHECK(u->building_area_dm2 == 12345);
	protobuf_c_message_free_unpacked(&u->base, NULL);
}

/* A licence travels as exact bytes plus a signature over those bytes: the
 * inner bytes must come back byte for byte, and decode to what was
 * signed. */
static void test_signed_licence(void)
{
	char *related[] = { "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U" };
	Qiao__V1__ElectronicLicence lic = QIAO__V1__ELECTRONIC_LICENCE__INIT;
	lic.licence_id = "1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0";
	lic.name = "营业执照";
	lic.type_code = "11100000000013338W009";
	lic.number = "91150602MA0H864248";
	lic.issuer_name = "鄂尔多斯市市场监督管理局";
	lic.issuer_uscc = "11150600MB0E78900J";
	lic.jurisdiction_code = "150600";
	lic.holder_name = "某某有限公司";
	lic.holder_code = "91150602MA0H864248";
	lic.holder_code_type = QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_USCC;
	lic.issue_date = "2025-05-22";
	lic.valid_from = "2025-05-22";
	lic.status = QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID;
	lic.n_related_licence_ids = 1;
	lic.related_licence_ids = related;
	lic.version = 3;
	lic.version_ms = 1747900000000LL;

	size_t ll = qiao__v1__electronic_licence__get_packed_size(&lic);
	uint8_t *lb = malloc(ll);
	CHECK(lb != NULL);
	if (!lb)
		return;
	qiao__v1__electronic_licence__pack(&lic, lb);

	uint8_t sig[64];
	memset(sig, 0xA5, sizeof sig);
	Qiao__V1__IssuerSignature is = QIAO__V1__ISSUER_SIGNATURE__INIT;
	is.algorithm = QIAO__V1__ALGORITHM__ED25519_SHA256;
	is.key_id = "11150600MB0E78900J/market#0123456789abcdef";
	is.signature.data = sig;
	is.signature.len = sizeof sig;
	is.domain = "qiao.v1.licence";
	is.signed_ms = 1747900000001LL;
	Qiao__V1__SignedLicence sl = QIAO__V1__SIGNED_LICENCE__INIT;
	sl.licence.data = lb;
	sl.licence.len = ll;
	sl.signature = &is;
	Qiao__V1__CacheMarking cm = QIAO__V1__CACHE_MARKING__INIT;
	cm.from_cache = 1;
	cm.cached_version = 3;
	Qiao__V1__ServedLicence sv = QIAO__V1__SERVED_LICENCE__INIT;
	sv.licence = &sl;
	sv.cache = &cm;
	Qiao__V1__LicenceByIdReply rep = QIAO__V1__LICENCE_BY_ID_REPLY__INIT;
	rep.licence = &sv;

	Qiao__V1__LicenceByIdReply *u = (Qiao__V1__LicenceByIdReply *)s_pack_unpack(&rep.base);
	CHECK(u != NULL && u->licence && u->licence->licence && u->licence->licence->signature);
	if (u && u->licence && u->licence->licence && u->licence->licence->signature) {
		const Qiao__V1__SignedLicence *got = u->licence->licence;
		CHECK(got->licence.len == ll && memcmp(got->licence.data, lb, ll) == 0);
		CHECK(got->signature->signature.len == 64);
		CHECK(strcmp(got->signature->domain, "qiao.v1.licence") == 0);
		CHECK(u->licence->cache && u->licence->cache->from_cache && u->licence->cache->cached_version == 3);
		Qiao__V1__ElectronicLicence *in =
			qiao__v1__electronic_licence__unpack(NULL, got->licence.len, got->licence.data);
		CHECK(in != NULL);
		if (in) {
			CHECK(strcmp(in->licence_id, lic.licence_id) == 0);
			CHECK(in->status == QIAO__V1__LICENCE_STATUS__LICENCE_STATUS_VALID);
			CHECK(in->holder_code_type == QIAO__V1__HOLDER_CODE_TYPE__HOLDER_CODE_TYPE_USCC);
			CHECK(in->version == 3);
			CHECK(in->valid_until[0] == '\0'); /* 长期 */
			CHECK(in->n_related_licence_ids == 1);
			qiao__v1__electronic_licence__free_unpacked(in, NULL);
		}
		CHECK(qiao__v1__electronic_licence__unpack(NULL, ll - 1, got->licence.data) == NULL);
	}
	if (u)
		qiao__v1__licence_by_id_reply__free_unpacked(u, NULL);
	free(lb);
}

/* A 行政处罚 published with 罚款 5 万元 is carried as 5 000 000 fen, and
 * its 已修复 marking survives. */
static void test_credit_penalty(void)
{
	char *cats[] = { "罚款", "警告" };
	Qiao__V1__AdministrativePenalty pen = QIAO__V1__ADMINISTRATIVE_PENALTY__INIT;
	pen.decision_no = "鄂市监罚字〔2024〕12号";
	pen.n_categories = 2;
	pen.categories = cats;
	pen.fine_fen = 5 * 1000000LL;
	pen.decision_date = "2024-03-01";
	pen.severity = QIAO__V1__PENALTY_SEVERITY__PENALTY_SEVERITY_GENERAL;
	Qiao__V1__CreditRepair rp = QIAO__V1__CREDIT_REPAIR__INIT;
	rp.repaired = 1;
	rp.repaired_date = "2024-09-01";
	Qiao__V1__CreditRecord rec = QIAO__V1__CREDIT_RECORD__INIT;
	rec.record_id = "penalty:2024:000012";
	rec.version = 2;
	rec.content_case = QIAO__V1__CREDIT_RECORD__CONTENT_PENALTY;
	rec.penalty = &pen;
	rec.repair = &rp;

	Qiao__V1__CreditRecord *u = (Qiao__V1__CreditRecord *)s_pack_unpack(&rec.base);
	CHECK(u != NULL);
	if (!u)
		return;
	CHECK(u->content_case == QIAO__V1__CREDIT_RECORD__CONTENT_PENALTY);
	CHECK(u->penalty && u->penalty->fine_fen == 5000000LL);
	CHECK(u->penalty && u->penalty->n_categories == 2 && strcmp(u->penalty->categories[1], "警告") == 0);
	CHECK(u->repair && u->repair->repaired && strcmp(u->repair->repaired_date, "2024-09-01") == 0);
	CHECK(!u->published);
	qiao__v1__credit_record__free_unpacked(u, NULL);
}

/* An audit entry keeps the sender's header bytes verbatim and subjects
 * only as 32-byte keyed hashes. */
static void test_audit_entry(void)
{
	uint8_t hdr[200], h1[32], h2[32], sig[64];
	for (size_t i = 0; i < sizeof hdr; i++)
		hdr[i] = (uint8_t)(i * 13);
	memset(h1, 0x11, sizeof h1);
	memset(h2, 0x22, sizeof h2);
	memset(sig, 0x33, sizeof sig);
	ProtobufCBinaryData hashes[] = { { sizeof h1, h1 }, { sizeof h2, h2 } };

	Qiao__V1__CaseTransition tr = QIAO__V1__CASE_TRANSITION__INIT;
	tr.case_id = "case:2025:0001";
	tr.seq = 7;
	tr.from_state = QIAO__V1__CASE_STATE__CASE_STATE_RUNNING;
	tr.to_state = QIAO__V1__CASE_STATE__CASE_STATE_COMPENSATING;
	tr.step = "loan-application";
	tr.step_from = QIAO__V1__STEP_STATE__STEP_STATE_RUNNING;
	tr.step_to = QIAO__V1__STEP_STATE__STEP_STATE_FAILED;

	Qiao__V1__AuditEntry e = QIAO__V1__AUDIT_ENTRY__INIT;
	e.index = 0; /* the first leaf: index 0 is a valid value */
	e.time_ms = 1748000000000LL;
	e.event_type = QIAO__V1__AUDIT_EVENT_TYPE__AUDIT_EVENT_TYPE_WORKFLOW_TRANSITION;
	e.outcome = QIAO__V1__AUDIT_OUTCOME__AUDIT_OUTCOME_FAILURE;
	e.error_code = QIAO__V1__ERROR_CODE__REJECTED;
	e.requester = "91150600MA0C9012X7/bank";
	e.n_subject_hashes = 2;
	e.subject_hashes = hashes;
	e.subject_key_id = 1;
	e.header.data = hdr;
	e.header.len = sizeof hdr;
	e.header_signature.data = sig;
	e.header_signature.len = sizeof sig;
	e.transition = &tr;

	Qiao__V1__AuditEntry *u = (Qiao__V1__AuditEntry *)s_pack_unpack(&e.base);
	CHECK(u != NULL);
	if (!u)
		return;
	CHECK(u->index == 0);
	CHECK(u->header.len == sizeof hdr && memcmp(u->header.data, hdr, sizeof hdr) == 0);
	CHECK(u->n_subject_hashes == 2 && u->subject_hashes[1].len == 32 &&
	      memcmp(u->subject_hashes[1].data, h2, 32) == 0);
	CHECK(u->error_code == QIAO__V1__ERROR_CODE__REJECTED);
	CHECK(u->transition && u->transition->seq == 7 &&
	      u->transition->step_to == QIAO__V1__STEP_STATE__STEP_STATE_FAILED);
	qiao__v1__audit_entry__free_unpacked(u, NULL);
}

/* 资金监管: the escrow amount is at least the payoff amount; both are fen
 * and survive at full int64 range. */
static void test_escrow_amounts(void)
{
	Qiao__V1__EscrowAgreementRequest r = QIAO__V1__ESCROW_AGREEMENT_REQUEST__INIT;
	r.contract_no = "WQ2025-000123";
	r.escrow_amount_fen = 9000000000000000000LL;
	r.payoff_amount_fen = 123456789LL;
	Qiao__V1__EscrowAgreementRequest *u = (Qiao__V1__EscrowAgreementRequest *)s_pack_unpack(&r.base);
	CHECK(u != NULL);
	if (!u)
		return;
	CHECK(u->escrow_amount_fen == 9000000000000000000LL);
	CHECK(u->payoff_amount_fen == 123456789LL);
	CHECK(u->escrow_amount_fen >= u->payoff_amount_fen);
	qiao__v1__escrow_agreement_request__free_unpacked(u, NULL);
}

int main(void)
{
	test_official_codes();
	test_table_is_complete();
	test_every_message_roundtrips();
	test_title_summary();
	test_signed_licence();
	test_credit_penalty();
	test_audit_entry();
	test_escrow_amounts();
	return check_done();
}
