/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-private.h - what the parts of the hot-plug workflow share:
 * hotplug.c (the queue, releases, events), hotplug-attach.c,
 * hotplug-detach.c and hotplug-reconcile.c
 */
#pragma once

#include "hotplug.h"
#include "hotplug-metrics.h"
#include "hotplug-plan.h"
#include "guest-addr.h"
#include "guest-topology.h"
#include "guest-usb.h"
#include "host-prep.h"
#include "hostdev.h"
#include "hostdevd-error.h"
#include "mdev.h"
#include "qemu-device.h"
#include "state.h"
#include "vm-devices.h"
#include "process-identity.h"

G_BEGIN_DECLS

struct _Hotplug {
  QmpClient *qmp;         /* NULL until hotplug_connect_qemu() */
  ProcessIdentity qemu;   /* the QEMU process behind @qmp, recorded with every device */
  ProcessIdentity self;   /* this hostdevd, as its claims name it */
  gboolean qemu_exited;   /* releases wait for its process to be gone before probing drivers */
  StateJournal *journal;  /* borrowed: the daemon owns it */
  char *vm;
  char *runtime_dir;      /* host-wide claims live here */
  uid_t qemu_uid;         /* who gets /dev/vfio/N; (uid_t)-1: leave it */
  char *qemu_arch;        /* the architecture QEMU's executable emulates (qemu-arch.h); NULL unknown */
  char *qemu_arch_how;    /* where that came from, for messages */
  gid_t qemu_gid;
  gboolean take_whole_group;
  gboolean optional_usb_to_qemu; /* HotplugConfig's */
  const Policy *policy;
  VmDevices *devices;
  /* the devices out of QEMU, by their state (device-state.c); those in QEMU are in @devices */
  GPtrArray *group_waiting; /* Release*: VM_DEVICE_GROUP_WAITING */
  GPtrArray *releasing;   /* Release*: VM_DEVICE_RELEASING (each device once) */
  GPtrArray *failed;      /* Release*: VM_DEVICE_RELEASE_FAILED; a detach tries again */
  guint releases_pending; /* host releases still running, plus holds while starting some */
  gboolean memlock_saved; /* QEMU's RLIMIT_MEMLOCK before the first VFIO device raised it */
  guint64 memlock_soft;
  guint64 memlock_hard;
  GPtrArray *drain_waiters; /* GTask*: waiting for releases_pending to reach 0 */
  gboolean features_known; /* probed once per QEMU connection (query-commands) */
  gboolean has_x_query_usb;            /* the USB bus layout: which ports are taken */
  /* the VM's USB ports, read from QEMU at the first USB attach and kept up to date as
   * devices come and go; NULL when unknown (a failed attach, a device we did not add left) */
  GuestUsbPorts *usb_ports;
  /* aliases of USB devices whose port was given back before QEMU's DEVICE_DELETED for them
   * was seen: that event is no news about the port map */
  GHashTable *usb_ports_released;
  gboolean has_memory_size_summary;    /* the guest's RAM, for the locked-memory limit */
  HotplugEventFunc emit;
  gpointer emit_data;
  HotplugMetrics *metrics;
  GQueue queue;          /* GTask*, the head is running */
  gulong event_handler;
};

typedef void (*OpStartFunc)(GTask *task);

/*
 * HotplugTypeOps - what differs between the kinds of <hostdev> (USB, PCI,
 * mdev) in the workflow; attach, detach and replay consult it instead of
 * switching on the type.  The table is in hotplug-attach.c.
 */
typedef struct {
  /* QEMU needs the guest's cooperation to remove it: an unplug may stay pending */
  gboolean unplug_needs_guest;
  /* VFIO: QEMU pins all guest RAM for it (RLIMIT_MEMLOCK) */
  gboolean pins_guest_memory;
  /* it goes on a PCI bus: the attach reads QEMU's bus layout to place it */
  gboolean placed_on_pci_bus;
  /* it goes on a USB port: the attach chooses one (the port map is read once) */
  gboolean placed_on_usb_port;
  /* read-only checks and look-ups on the host, before anything is planned */
  gboolean (*resolve)(AttachItem *item, GError **error);
  /* what the policy decides on; FALSE: the policy does not govern it */
  gboolean (*policy_facts)(const AttachItem *item, PolicyDeviceFacts *facts);
  /* the attach's steps before QEMU's device_add, in order (NULL-terminated);
   * each says itself whether a request needs it */
  const AttachStepKind *const *host_steps;
  /* (nullable) what confirms the device in QEMU once every device_add was
   * accepted; none where device_add's success is the proof */
  const AttachStepKind *verify;
  /* (nullable) whether the kernel shows that QEMU let go of @device, a proof
   * QEMU cannot forge, so that its word need not be asked after
   * DEVICE_DELETED; FALSE (or none) asks QEMU */
  gboolean (*let_go_in_kernel)(const VmDevice *device);
} HotplugTypeOps;

/* hotplug_forget_usb_ports() - the USB port map is no longer trusted: read it at the next use. */
void hotplug_forget_usb_ports(Hotplug *hotplug);

/* hotplug_place_pci() - @item's guest PCI address (and zPCI ids), chosen from op->topology
 * (libvirt's rules), or the one its XML names, checked. */
gboolean hotplug_place_pci(Op *op, AttachItem *item, GError **error);

/* hotplug_place_usb() - @item's USB port, chosen from hotplug->usb_ports (libvirt's rules). */
gboolean hotplug_place_usb(Op *op, AttachItem *item, GError **error);

/* Return: the workflow's operations for @type. */
const HotplugTypeOps *hotplug_type_ops(HostdevType type);

/*
 * AttachItem - one device of an attach request (a request holds one, or
 * several in a <devices> element), and what its attach decided and did.
 */
struct _AttachItem {
  Hotplug *hotplug;
  Hostdev *hostdev;              /* the definition being attached (live fields filled on the way) */
  const HotplugTypeOps *ops;     /* how this kind of device is handled */
  HostUsbDevice *usb;            /* the resolved USB device, NULL if absent */
  MdevDevice *mdev;              /* the mediated device as sysfs showed it when resolved */
  gboolean alias_given;          /* the XML named the alias */
  gboolean alias_retried;        /* a clash with a QEMU id was already resolved once */
  gboolean usb_bus_given;        /* the XML names the USB controller */
  gboolean usb_port_given;       /* the XML names the USB port */
  gboolean usb_port_retried;     /* a port taken behind hostdevd's back was stepped over once */
  gboolean pci_addr_given;       /* the XML names the guest PCI address */
  gboolean pci_slot_retried;     /* a slot taken behind hostdevd's back was stepped over once */
  char *usb_hostdevice;          /* "/dev/fdset/N" once the USB descriptor is passed */
  QemuDeviceContext context;     /* the decisions the commands are built from */
  HostPrep *prep;                /* what was done to the host so far */
  GPtrArray *commands;           /* JsonObject*: device_add arguments in order */
  gboolean zpci_reused;          /* commands[0], a zpci left by an earlier attempt, is in QEMU */
  GArray *joining;               /* PciAddress: the request's other PCI functions */
  AttachItem *slot_leader;       /* function 0 of the guest slot it shares with other devices
                                  * of the request (a multifunction slot); NULL otherwise */
  AttachItem *bound_before;      /* the request's device of its IOMMU group whose binding runs
                                  * just before its own (it gives /dev/vfio/N to QEMU first);
                                  * NULL otherwise */
  guint64 memlock_needed;        /* the limit VFIO needs, 0 when QEMU's covers it */
  guint64 guest_ram;             /* bytes QEMU may pin for it (bounded by the host's RAM) */
  const char *journaled_step;    /* the step its journal record names now */
  gboolean keep_record;          /* an undo failed: the journal keeps the record */
  gboolean handed_over;          /* in QEMU until the guest lets go: its release undoes it */
  gboolean waits_for_device;     /* an absent optional USB device: accepted as waiting,
                                  * nothing planned (hotplug-follow.c attaches it later) */
  /* its "attached" record and live XML, made ready while QEMU works on the
   * plan's last step (hotplug-attach.c): the answer then waits for a write only */
  StateDraft *attached_record;
  char *attached_xml;
};

AttachItem *attach_item_new(Hotplug *hotplug, Hostdev *hostdev);
void attach_item_free(AttachItem *item);

struct _Op {
  Hotplug *hotplug;
  OpStartFunc start;
  /* attach */
  GPtrArray *items;              /* AttachItem*: the devices of the request, in its order */
  gboolean batch;                /* the request was a <devices> element */
  gboolean dry_run;
  gboolean reattach;             /* a followed USB device coming back (hotplug-follow.c) */
  gint64 phase_start;            /* monotonic µs: when the current phase began */
  JsonObject *timings;           /* milliseconds per attach phase, for the reply */
  GuestTopology *topology;       /* PCI (and dry runs) only */
  gboolean took_usb_ports;       /* hotplug->usb_ports counts this request's devices */
  /* the guest's RAM (query-memory-size-summary), asked with the topology so
   * that the guest-memory step finds it answered (hotplug-steps.c) */
  gboolean guest_memory_asked;
  JsonNode *guest_memory;        /* its answer, once in */
  GError *guest_memory_error;    /* or why there is none */
  GTask *guest_memory_waiter;    /* (nullable) the guest-memory step, waiting for it */
  /* what sizing the limit reads of the host and of QEMU, read once the answer
   * is in (while the host is prepared, not after) */
  gboolean memlock_facts_read;
  guint64 host_ram;              /* the host's memory, 0 when unknown */
  GError *host_ram_error;        /* why it is unknown */
  gboolean qemu_ipc_lock;        /* QEMU may lock memory without limit */
  /* the plan (hotplug-plan.h) */
  GArray *plan;                  /* AttachStep, in order */
  guint next;                    /* the first step not run yet (of a concurrent run: its first) */
  guint run_end;                 /* a concurrent run is under way: its end, else 0 */
  guint running;                 /* steps of that run running now */
  gboolean launching;            /* starting the run's steps: one that ends at once waits */
  guint undo_from;               /* the steps before it took effect */
  GError *failure;               /* what the attach fails with once undone */
  OpStartFunc plan_finished;     /* runs once every step is done */
  OpStartFunc last_step_sent;    /* (nullable) the plan's last step waits for QEMU's answer:
                                  * what plan_finished needs is made ready meanwhile */
  char *request;                 /* (nullable) the id of its journal record as a whole
                                  * (several devices: hotplug-request.c) */
  OpStartFunc after_return;      /* (nullable) once the client has its answer, before the
                                  * next operation starts: records of what happened */
  GPtrArray *attached;           /* JsonObject: each attached device's reply, for after_return */
  /* detach */
  Hostdev *hostdev;              /* the device named by XML */
  char *alias;                   /* the device being detached */
  char *source;                  /* its host device, as list-devices shows it */
  GStrv slot;                    /* every function of its multifunction slot, function 0 first */
  guint wait_ms;
  gint64 deadline;               /* monotonic time the wait ends */
  guint busy_retries;
  GCancellable *wait_cancel;     /* stops the event waiters */
  gboolean del_answered;         /* device_del returned OK */
  gboolean waiting;              /* a waiter is armed */
  char *outcome;                 /* detach: "deleted", "guest-error", "timeout" */
  gboolean dequeued;             /* it waits out of the queue: the next operation runs */
};

/* The lifecycle of a device after its attach (device-state.c). */
/* hotplug_device_enter() - @device becomes @state, journaled first; FALSE with
 * @error (nothing changed) when the journal cannot be written, or when the
 * lifecycle has no such change (a defect, logged as critical). */
gboolean hotplug_device_enter(Hotplug *hotplug, VmDevice *device, VmDeviceState state,
                              GError **error);
/* hotplug_device_enter_anyway() - the same, but a journal that cannot be written
 * is logged and the device becomes @state all the same (a release must go on). */
void hotplug_device_enter_anyway(Hotplug *hotplug, VmDevice *device, VmDeviceState state);
/* Return: what list-devices shows as @state's "state". */
const char *hotplug_device_state_listed(VmDeviceState state);
/* The step a waiting device's record names (VM_DEVICE_WAITING, hotplug-follow.c). */
#define HOTPLUG_STEP_WAIT_FOR_DEVICE "wait-for-device"
/* the journal step of an attach whose claims brought what a VM that is gone left */
#define HOTPLUG_STEP_CLAIMED "claimed"
/* the journal step of a release about to disable a USB device's hub port */
#define HOTPLUG_STEP_USB_REVOKE "usb-revoke"

/* USB devices that follow re-enumeration (hotplug-follow.c). */
/* Return: (nullable): what list-devices shows as @device's "phase". */
const char *hotplug_follow_phase(const VmDevice *device);
/* hotplug_follow_note_resolved() - @item's USB device was looked up: whether it waits
 * for its device (absent, optional), whether it is followed (journaled with its host
 * record), and the names it is recognised by when it is back. */
void hotplug_follow_note_resolved(AttachItem *item);
/* Return: whether @item's look-up failure @error only means that its optional USB
 * device is not there yet, so that it may wait for it (hostdevd waits, not QEMU). */
gboolean hotplug_follow_may_wait(const AttachItem *item, const GError *error);
/* hotplug_follow_accept_waiting() - @hostdev (absent, startupPolicy='optional') is the
 * VM's from now on, waiting for its device: journaled, listed, DEVICE_WAITING.
 * Return: (transfer full): the attach's reply for it, with "state". */
JsonNode *hotplug_follow_accept_waiting(Hotplug *hotplug, Hostdev *hostdev, HostPrep *prep);
/* hotplug_follow_reserve_usb_ports() - the USB port map @ports (just read from QEMU,
 * which does not show them) keeps the guest ports of the waiting devices for them. */
void hotplug_follow_reserve_usb_ports(Hotplug *hotplug, GuestUsbPorts *ports);
/* hotplug_follow_resume() - a waiting @device read back from the journal: finish leaving
 * QEMU (@in_qemu: QEMU still has its device) and give up its claims. */
void hotplug_follow_resume(Hotplug *hotplug, VmDevice *device, gboolean in_qemu);
/* hotplug_reattach_async() - attach the followed @hostdev (transfer full) again, as
 * hotplug_attach_async() does, under its recorded alias (whose record it replaces) and
 * only with a device found on the host. */
void hotplug_reattach_async(Hotplug *hotplug, Hostdev *hostdev, GAsyncReadyCallback callback,
                            gpointer user_data);

/* What the policy says of an attach (attach-policy.c): FALSE with PolicyDenied
 * naming the rule.  hotplug_policy_allows_xml() - what the XML asks for, before
 * anything is looked up: its ROM file, a VF's MAC/VLAN.
 * hotplug_policy_allows() - the device once resolved (ids, class, a USB hub);
 * @before counts the request's devices ahead of it. */
gboolean hotplug_policy_allows_xml(const AttachItem *item, GError **error);
gboolean hotplug_policy_allows(const AttachItem *item, guint before, GError **error);
/* hotplug_policy_allows_companions() - every endpoint a whole-group takeover
 * would bind for @record (its planned companions) passes the policy too. */
gboolean hotplug_policy_allows_companions(const AttachItem *item, const VfioRecord *record,
                                          GError **error);
/* hotplug_pci_policy_facts() - what the policy decides on for the PCI device at @addr. */
void hotplug_pci_policy_facts(const PciAddress *addr, PolicyDeviceFacts *facts);

/* The steps an attach is made of (hotplug-steps.c). */
extern const AttachStepKind hotplug_step_claim;
extern const AttachStepKind hotplug_step_vfio_bind;
extern const AttachStepKind hotplug_step_vf_program;
extern const AttachStepKind hotplug_step_guest_memory;
/* hotplug_ask_guest_memory() - ask QEMU for the guest's RAM now, if a device of
 * @task's request pins it, so that the answer is in before the plan needs it. */
void hotplug_ask_guest_memory(GTask *task);
extern const AttachStepKind hotplug_step_memlock;
extern const AttachStepKind hotplug_step_pass_fd;
extern const AttachStepKind hotplug_step_device_add;
extern const AttachStepKind hotplug_step_zpci_reuse;
extern const AttachStepKind hotplug_step_verify_usb;

/* An attach of several devices, journaled as one request (hotplug-request.c). */
/* hotplug_request_begin() - before the first step takes effect, and again whenever an
 * alias changes: journal @op's devices as one request (nothing for a single device). */
gboolean hotplug_request_begin(Op *op, GError **error);
/* hotplug_request_end() - just before the answer: the request's outcome is final. */
void hotplug_request_end(Op *op);

/* hotplug_rename_device() - QEMU has a device by the alias hostdevd chose for
 * @item: choose again, avoiding @qemu_ids, and rebuild its commands. */
gboolean hotplug_rename_device(GTask *task, AttachItem *item, const char *const *qemu_ids,
                               GError **error);
/* hotplug_replan_with_fdset() - rebuild @item's commands once the USB device
 * travels as /dev/fdset/@fdset_id. */
gboolean hotplug_replan_with_fdset(AttachItem *item, gint fdset_id, GError **error);

/* hotplug_foreach_device() - @func for every device of the VM, in QEMU or leaving
 * it; @phase says what a leaving device waits for (NULL for one in QEMU). */
typedef void (*HotplugDeviceFunc)(const VmDevice *device, const char *phase, gpointer user_data);
void hotplug_foreach_device(Hotplug *hotplug, HotplugDeviceFunc func, gpointer user_data);

/* hotplug_op_new() - an operation that runs @start when its turn comes. */
GTask *hotplug_op_new(Hotplug *hotplug, OpStartFunc start, gpointer source_tag,
                      GAsyncReadyCallback callback, gpointer user_data);
/* hotplug_op_submit() - parse @xml (when given) into the operation and queue it. */
void hotplug_op_submit(GTask *task, const char *xml);
/* hotplug_op_let_queue_go() - the running operation goes on waiting (for the
 * guest) out of the queue: the next one starts now. */
void hotplug_op_let_queue_go(GTask *task);
/* hotplug_op_return() - complete the running operation and start the next one. */
void hotplug_op_return(GTask *task, JsonNode *value, GError *error);

/* Return: whether QEMU is connected (there may be none: a replay after it died). */
gboolean hotplug_qemu_connected(Hotplug *hotplug);

/* Return: (nullable): the device being given back to the host (or waiting for its
 * IOMMU group to be free) whose source @hostdev names, or whose alias is @alias. */
VmDevice *hotplug_find_leaving(Hotplug *hotplug, const Hostdev *hostdev, const char *alias);

/* Return: (nullable): the device being given back to the host (or whose release
 * failed, to be tried again) whose release also gives back the PCI device @addr, a
 * companion of its VFIO record (the rest of its IOMMU group). */
VmDevice *hotplug_find_releasing_with(Hotplug *hotplug, const PciAddress *addr);

/* Return: (nullable): a device of IOMMU group @group being given back to the host
 * now; its release chose which claims to give up when it began. */
VmDevice *hotplug_find_releasing_in_group(Hotplug *hotplug, int group);

/* hotplug_keep_shared_claims() - drop from what @prep's release gives up the claims
 * another device of this VM still names (its IOMMU group's, a group partner's). */
void hotplug_keep_shared_claims(Hotplug *hotplug, HostPrep *prep);

/* hotplug_retry_failed_release() - a release of @alias (or of what @hostdev names)
 * that failed is tried again; @then finishes after it with {"alias", "status"}
 * (and "host-error" when it failed again).
 * Return: FALSE when there is no such failed release. */
gboolean hotplug_retry_failed_release(Hotplug *hotplug, const Hostdev *hostdev,
                                      const char *alias, GTask *then);

/* hotplug_keep_failed_release() - an attach's undo could not give @hostdev's host
 * device back (@error): it stays this VM's as a release that failed, listed and
 * journaled as a detach's failed release is, which detaching it again or a
 * restart tries again.  Takes @hostdev and @prep. */
void hotplug_keep_failed_release(Hotplug *hotplug, Hostdev *hostdev, HostPrep *prep,
                                 const GError *error);

/* Return: (transfer full) (nullable): "KEY (VM 'NAME')" for the first claim of
 * @prep that another live VM holds now, or NULL. */
char *hotplug_held_elsewhere(Hotplug *hotplug, const HostPrep *prep);

/* Return: this hostdevd and its QEMU, as a claim names them. */
ClaimOwner hotplug_claim_owner(const Hotplug *hotplug);
/* hotplug_claim_again() - take @key for this VM again, as this hostdevd and its QEMU. */
gboolean hotplug_claim_again(Hotplug *hotplug, const char *key, GError **error);

/* hotplug_emit() - tell the daemon (and so the control clients) of an event. */
void hotplug_emit(Hotplug *hotplug, const char *name, JsonObject *data);

/* Return: the class a failed QMP command is reported with. */
int hotplug_qemu_failure_code(const GError *error);
/* Return: (transfer full): the ids in a qom-list /machine/peripheral reply. */
GStrv hotplug_peripheral_ids(JsonNode *qom_list);
/* hotplug_release_when_gone() - QEMU reported @device deleted: give the
 * device back (hotplug_release_device()) at once when the kernel shows QEMU
 * let go of it (its type's let_go_in_kernel), else ask QEMU whether it
 * still has it first, and give it back only when it says it has not.
 * Otherwise it stays as it is, and @then (when given) is answered with
 * @reply's status "pending"; a device another path released meanwhile
 * answers @reply as is. */
void hotplug_release_when_gone(Hotplug *hotplug, VmDevice *device, const char *why, GTask *then,
                               JsonNode *reply);
/* hotplug_list_peripherals() - qom-list /machine/peripheral. */
void hotplug_list_peripherals(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer data);

/* Whether QEMU has a device, by its own answer. */
typedef enum {
  HOTPLUG_PRESENT,
  HOTPLUG_ABSENT,
  HOTPLUG_PRESENCE_UNKNOWN,   /* QEMU's answer could not be read: assume nothing */
} HotplugPresence;

/* hotplug_query_present() - ask QEMU whether /machine/peripheral/@alias exists;
 * finish with hotplug_query_present_finish() (@error set only when unknown). */
void hotplug_query_present(Hotplug *hotplug, const char *alias, GAsyncReadyCallback callback,
                           gpointer data);
HotplugPresence hotplug_query_present_finish(GAsyncResult *result, GObject *source,
                                             GError **error);
/* hotplug_remove_from_qemu() - device_del whose outcome only matters for the log. */
void hotplug_remove_from_qemu(Hotplug *hotplug, const char *id);
/* HotplugContinue - what to do once an asynchronous step is over. */
typedef void (*HotplugContinue)(gpointer data);
/* hotplug_remove_fdset() - drop the fdset holding @prep's USB descriptor
 * from QEMU (when there is one), then run @then. */
void hotplug_remove_fdset(Hotplug *hotplug, HostPrep *prep, HotplugContinue then, gpointer data);

/* hotplug_journal_device() - record @state and the @step about to take effect
 * (@commands, @prep: keep what was recorded before when NULL). */
gboolean hotplug_journal_device(Hotplug *hotplug, const Hostdev *hostdev, StateDeviceState state,
                                const char *step, GPtrArray *commands, const HostPrep *prep,
                                gboolean binding_in_flight, GError **error);
/* hotplug_journal_draft() - the same record, with @hostdev's live XML already
 * formatted, made ready to be written later (state_journal_commit()). */
StateDraft *hotplug_journal_draft(Hotplug *hotplug, const Hostdev *hostdev, const char *xml,
                                  StateDeviceState state, const char *step, GPtrArray *commands,
                                  const HostPrep *prep, gboolean binding_in_flight);
/* hotplug_journal_forget() - drop @alias's journal entry (a failure is logged). */
void hotplug_journal_forget(Hotplug *hotplug, const char *alias);

/* hotplug_revoke_usb_async() - before USB @device goes back to the host, make every
 * descriptor of it that QEMU may have kept useless, and wait (bounded) until the
 * host has it again (hotplug-usb-revoke.c); only for a device it applies to
 * (hotplug_revoke_usb_applies()).
 * _finish(): FALSE with @error: not revoked, so not to be given back. */
void hotplug_revoke_usb_async(Hotplug *hotplug, VmDevice *device, GAsyncReadyCallback callback,
                              gpointer user_data);
gboolean hotplug_revoke_usb_finish(GAsyncResult *result, GError **error);
/* Return: whether @device has USB descriptors to revoke at all (else the release
 * goes on at once, without a turn of the loop). */
gboolean hotplug_revoke_usb_applies(const VmDevice *device);

/* hotplug_release_device() - QEMU no longer holds @device: give it back to
 * the host, forget it, then finish @then (nullable) with @reply. */
void hotplug_release_device(Hotplug *hotplug, VmDevice *device, const char *why, GTask *then,
                            JsonNode *reply);
/* hotplug_restore_memlock_if_unused() - once no VFIO device is left, QEMU's
 * locked-memory limit goes back to what it was before hostdevd raised it. */
void hotplug_restore_memlock_if_unused(Hotplug *hotplug);
/* hotplug_detach_abandon() - back to "attached" after a refused unplug. */
void hotplug_detach_abandon(Hotplug *hotplug, VmDevice *device);
/* hotplug_detach_abandon_slot() - the same for every function of @device's guest slot. */
void hotplug_detach_abandon_slot(Hotplug *hotplug, VmDevice *device);
/* Return: (transfer container): @device and the VM's other devices in its guest PCI
 * slot (a multifunction slot), function 0 first. */
GPtrArray *hotplug_slot_of(Hotplug *hotplug, VmDevice *device);

G_END_DECLS
