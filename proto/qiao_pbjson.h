/*
 * qiao_pbjson.h - any message of the wire contract to and from JSON, driven
 * by its protobuf-c descriptor (no generated code per type).
 *
 * The mapping is proto3's canonical JSON mapping, restricted to what the
 * contract uses:
 *   - field names as in the .proto file (snake_case) (protobuf-c 1.4 keeps
 *     no json_name, so lowerCamelCase is not accepted);
 *   - enums by their value name ("LOAN_DECISION_APPROVED"); on input a
 *     number is accepted too;
 *   - int64 / uint64 as JSON integers (a uint64 above INT64_MAX as a
 *     decimal string); on input a decimal string is accepted too;
 *   - bytes as standard base64;
 *   - repeated fields as arrays, messages as objects; on input null means
 *     "not set".
 * Output has every field, defaults included (scalars 0 / "" / false, enums
 * by name, repeated as []), except unset message fields, which are absent:
 * a reader never has to know proto3's defaults.
 *
 * Input is strict: a key the message does not have, a value of the wrong
 * JSON type, an integer out of the field's range, an unknown enum name or
 * bad base64 is an error whose text names the field path
 * ("sellers[0].id.type: unknown enum value ..."), so a caller can tell a
 * person what to fix.
 */
#ifndef QIAO_PBJSON_H
#define QIAO_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* The message as a new JSON object (NULL only when out of memory). */
json_t *qiao_pb_to_json(const ProtobufCMessage *m);

/*
 * Build a message of type `d` from the JSON object `j`.  0 and *out (free
 * with protobuf_c_message_free_unpacked(*out, NULL)), or QIAO_EINVAL with
 * err naming the path and the reason, or QIAO_ENOMEM.
 */
int qiao_pb_from_json(const ProtobufCMessageDescriptor *d, const json_t *j, ProtobufCMessage **out, char *err,
		      size_t errlen);

/* Pack `m` into a new buffer (free()); NULL when out of memory. */
uint8_t *qiao_pb_pack(const ProtobufCMessage *m, size_t *len);

/* Field `name` of `d` (its proto name), or NULL. */
const ProtobufCFieldDescriptor *qiao_pb_field(const ProtobufCMessageDescriptor *d, const char *name);

#endif
