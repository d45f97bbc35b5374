/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * control-proto.h - the control socket's wire format, shared by hostdevd
 * and hostdevctl
 *
 * QMP-style JSON, one object per line (DESIGN.md "Protocols"):
 *   greeting {"hostdevd": {"version": "0.1.0", "vm": "vm1"}}
 *   request  {"execute": "attach-device", "arguments": {...}, "id": 1}
 *   reply    {"return": ..., "id": 1} or {"error": {"class", "desc"}, "id": 1}
 *   event    {"event": "DEVICE_ATTACHED", "data": {...}, "timestamp": {...}}
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Largest request line accepted, in bytes (an XML document plus framing). */
#define CONTROL_MAX_REQUEST (128 * 1024)
/* Deepest JSON nesting accepted in a request. */
#define CONTROL_MAX_DEPTH 8
/* Largest reply or event line a client accepts. */
#define CONTROL_MAX_REPLY (16 * 1024 * 1024)

typedef struct {
  char *command;          /* "execute" */
  JsonObject *arguments;  /* never NULL: an empty object when absent */
  JsonNode *id;           /* "id" as sent, or NULL */
} ControlRequest;

void control_request_free(ControlRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ControlRequest, control_request_free)

/**
 * control_request_parse() - validate one request line
 * Return: the request, or NULL with an InvalidArgument HOSTDEVD_ERROR
 * saying what is wrong with it.  The id, when it could be read, is
 * returned in @id_out even on failure, so the error can carry it.
 */
ControlRequest *control_request_parse(const char *line, gsize length,
                                      JsonNode **id_out, GError **error);

/* Return: the wire class of any error hostdevd reports (QMP errors included). */
const char *control_error_class(const GError *error);

/* Return: (transfer full): one line (no newline) for each message kind. */
char *control_format_greeting(const char *version, const char *vm);
char *control_format_return(JsonNode *value, JsonNode *id);
char *control_format_error(const GError *error, JsonNode *id);
char *control_format_event(const char *name, JsonObject *data);
char *control_format_request(const char *command, JsonObject *arguments, gint64 id);

/* Return: (transfer full): @object as one line of JSON. */
char *control_json_to_line(JsonNode *node);

/* Return: the runtime directory: $HOSTDEVD_RUNTIME_DIR, else the built-in default. */
const char *control_runtime_dir(void);

/* Return: whether @name may name a VM: 1-64 of [A-Za-z0-9._-], not starting with '.'
 * (it becomes part of file names). */
gboolean control_vm_name_is_valid(const char *name);

/* Return: (transfer full): RUNTIME_DIR/NAME.sock. */
char *control_socket_path_for_vm(const char *vm);

G_END_DECLS
