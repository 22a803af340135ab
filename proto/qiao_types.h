/*
 * qiao_types.h - every message type of the wire contract (the .proto files of proto/),
 * by its full name: for tools and adapters that are told a type by name
 * (the generic SQL adapter's mapping files) and for the schema test, which
 * checks that the table names every message proto/ declares.
 */
#ifndef QIAO_TYPES_H
#define QIAO_TYPES_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* The descriptor of "qiao.v1.<Name>", or NULL. */
const ProtobufCMessageDescriptor *qiao_type_by_name(const char *name);
/* All of them: i < qiao_type_count(). */
size_t qiao_type_count(void);
const ProtobufCMessageDescriptor *qiao_type_at(size_t i);

#endif
