/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-metrics.h - what a scraper learns of one VM's hostdevd
 *
 * Counters of requests and events, latency histograms of attach and
 * detach, and gauges of the devices by type and state, rendered in the
 * Prometheus text exposition format (version 0.0.4).  The names are
 * documented in README.md ("Metrics") and hostdevd(8).
 */
#pragma once

#include "hotplug.h"

G_BEGIN_DECLS

typedef struct _HotplugMetrics HotplugMetrics;

HotplugMetrics *hotplug_metrics_new(void);
void hotplug_metrics_free(HotplugMetrics *metrics);

/* hotplug_metrics_count_event() - one more event @name went to the clients. */
void hotplug_metrics_count_event(HotplugMetrics *metrics, const char *name);

/**
 * hotplug_request_done() - a control request ended
 * @command: "attach-device", "detach-device"
 * @seconds: how long from its arrival to its reply
 * @result: "ok", "dry-run" or the class of its error (control_error_class())
 *
 * A dry run is counted but is not an attach: no latency is kept for it.
 */
void hotplug_request_done(Hotplug *hotplug, const char *command, double seconds,
                          const char *result);

/* Return: (transfer full): every metric of @hotplug, in the text format. */
char *hotplug_metrics_text(Hotplug *hotplug);

G_END_DECLS
