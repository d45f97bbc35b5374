/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * control-commands.h - the control protocol's commands and events, once
 *
 * Everything that differs by command lives in one table: its arguments
 * and their types, who may run it, whether it runs long, what it returns,
 * its help and the events it causes.  hostdevd's dispatcher checks
 * arguments and access from it, `query-commands` describes it, hostdevctl
 * prints its help from it, and tests hold README.md against it.
 */
#pragma once

#include "policy.h"

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum {
  CONTROL_COMMAND_ATTACH_DEVICE,
  CONTROL_COMMAND_DETACH_DEVICE,
  CONTROL_COMMAND_LIST_DEVICES,
  CONTROL_COMMAND_DUMPXML,
  CONTROL_COMMAND_QUERY_VERSION,
  CONTROL_COMMAND_QUERY_METRICS,
  CONTROL_COMMAND_QUERY_COMMANDS,
  CONTROL_N_COMMANDS
} ControlCommandId;

typedef enum {
  CONTROL_ARG_STRING,
  CONTROL_ARG_BOOLEAN,
  CONTROL_ARG_SECONDS,    /* a number from 0 to 3600 */
} ControlArgType;

typedef enum {
  CONTROL_ARG_OPTIONAL,
  CONTROL_ARG_REQUIRED,
  CONTROL_ARG_ONE_OF,     /* exactly one of the command's ONE_OF arguments */
} ControlArgPresence;

typedef struct {
  const char *name;
  ControlArgType type;
  ControlArgPresence presence;
  const char *help;
} ControlArgument;

#define CONTROL_MAX_ARGUMENTS 3

typedef struct {
  ControlCommandId id;
  const char *name;
  PolicyAccess access;          /* the least a client needs to run it */
  gboolean long_running;        /* counts against a client's requests in flight */
  ControlArgument arguments[CONTROL_MAX_ARGUMENTS];   /* name NULL: no more */
  const char *returns;          /* what the reply holds */
  const char *help;             /* one sentence */
  const char *events[3];        /* events it causes, NULL-terminated */
} ControlCommand;

typedef struct {
  const char *name;
  const char *data;             /* the members of its "data" */
  const char *help;
} ControlEvent;

/* Return: the table entry of command @name, or NULL when there is none. */
const ControlCommand *control_command_lookup(const char *name);

/* Return: the table entry of @id. */
const ControlCommand *control_command_get(ControlCommandId id);

/* Return: (transfer full): every command name, ", "-separated, for messages. */
char *control_command_names(void);

/**
 * control_command_check_arguments() - hold a request's arguments against the table
 * Return: FALSE with an InvalidArgument HOSTDEVD_ERROR naming the argument
 * and what it must be: an unknown one, a wrong type, a required one missing,
 * or not exactly one of a ONE_OF set.
 */
gboolean control_command_check_arguments(const ControlCommand *command,
                                         JsonObject *arguments, GError **error);

/* Return: @name's argument as a number of seconds; @fallback when absent. */
double control_argument_seconds(JsonObject *arguments, const char *name, double fallback);

/* Return: every event clients can receive, and how many in @n. */
const ControlEvent *control_events(gsize *n);

/* Return: (transfer full): the answer to query-commands: {"commands": [...], "events": [...]} */
JsonNode *control_commands_describe(void);

G_END_DECLS
