/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * corpus-case.h - run one case of the XML corpus (tests/xml/NAME.xml with
 * its expectation NAME.json) through the parser and the QEMU translation
 *
 * NAME.json holds an object:
 *   "context": what the caller of qemu_device_plan() knows (all optional):
 *       "id"              the QEMU id; default the XML's alias, else "hostdev0"
 *       "usb"             {"bus": B, "device": D}: the resolved host device
 *       "usb_hostdevice"  e.g. "/dev/fdset/3"
 *       "pci_bus", "slot", "function"   the guest place chosen (bus index);
 *                         without it (and without a guest address in the
 *                         XML) the daemon's allocators place the device in
 *                         the VM compare-libvirt.py defines, as a USB
 *                         device without a port always is
 *       "s390x"           true: the machine has zPCI
 *       "zpci"            {"uid": U, "fid": F}: what the caller assigns when
 *                         the XML leaves them out
 *   then either "args": [ device_add argument objects, in order ]
 *   or "error": {"class": "InvalidArgument", "contains": "substring"};
 *   "libvirt": how tests/libvirt compares the case (see compare-libvirt.py).
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct {
  JsonArray *args;   /* (nullable): the device_add arguments */
  char *live_xml;    /* (nullable): the live XML after the attach */
  GError *error;     /* (nullable): why parsing or planning failed */
} CorpusResult;

void corpus_result_free(CorpusResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CorpusResult, corpus_result_free)

/**
 * corpus_case_run() - parse @xml as a client's attach-device XML, apply the
 *   context of @spec and plan the devices; fill in what an attach records
 *   (alias, guest address, zPCI ids) and format the live XML.
 * Return: (transfer full): the result; exactly one of args and error is set.
 */
CorpusResult *corpus_case_run(const char *xml, gsize length, JsonObject *spec);

/* Return: (transfer full): @node as compact JSON, members in their order. */
char *corpus_json_to_string(JsonNode *node);

G_END_DECLS
