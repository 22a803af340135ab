/*
 * fuzz_bodies: message bodies, protobuf and JSON.
 *
 * data[0] picks the message type (qiao_types.h: data[0] % qiao_type_count()),
 * data[1] & 1 the direction; the rest is the payload:
 *   0: protobuf_c_message_unpack(), then qiao_pb_to_json(), and the JSON
 *      back through qiao_pb_from_json() (what the workflow engine does with
 *      a reply) and qiao_pb_pack();
 *   1: JSON text through qiao_pb_from_json() (the CLI's --json bodies, the
 *      workflow engine's requests), then pack, unpack, to JSON again.
 */
#include "qiao_pbjson.h"
#include "qiao_types.h"

#include <jansson.h>
#include <stdlib.h>

static void s_from_json(const ProtobufCMessageDescriptor *d, const json_t *j, int again)
{
	ProtobufCMessage *m = NULL;
	char err[256];
	if (qiao_pb_from_json(d, j, &m, err, sizeof err) != 0) {
		if (m)
			abort(); /* a failure must not hand out a message */
		return;
	}
	size_t len = 0;
	uint8_t *buf = qiao_pb_pack(m, &len);
	protobuf_c_message_free_unpacked(m, NULL);
	if (!buf)
		return;
	ProtobufCMessage *u = protobuf_c_message_unpack(d, NULL, len, buf);
	free(buf);
	if (!u)
		abort(); /* what we packed must unpack */
	if (again) {
		json_t *j2 = qiao_pb_to_json(u);
		json_decref(j2);
	}
	protobuf_c_message_free_unpacked(u, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t n = qiao_type_count();
	if (n == 0)
		abort();
	const ProtobufCMessageDescriptor *d = qiao_type_at(data[0] % n);
	int mode = data[1] & 1;
	data += 2;
	size -= 2;
	if (mode == 0) {
		ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size, data);
		if (!m)
			return 0;
		json_t *j = qiao_pb_to_json(m);
		protobuf_c_message_free_unpacked(m, NULL);
		if (j)
			s_from_json(d, j, 0);
		json_decref(j);
	} else {
		json_error_t e;
		json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
		if (!j)
			return 0;
		s_from_json(d, j, 1);
		json_decref(j);
	}
	return 0;
}
