/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config.h"
#include "hotplug-metrics.h"
#include "hotplug-private.h"

/* Upper bounds of the latency buckets, in seconds: a USB attach takes
 * milliseconds, a detach waits for the guest (up to its --wait). */
static const double bucket_bounds[] = {
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};
#define N_BUCKETS G_N_ELEMENTS(bucket_bounds)

typedef struct {
  guint64 counts[N_BUCKETS + 1];   /* the last: above every bound (+Inf only) */
  guint64 total;
  double sum;
} Histogram;

/* The requests a histogram is kept for, in the order they are printed. */
static const char *const timed_commands[] = { "attach-device", "detach-device" };

struct _HotplugMetrics {
  gint64 started;                 /* g_get_real_time() at start */
  GHashTable *requests;           /* "command\tresult" -> guint64* */
  GHashTable *events;             /* name -> guint64* */
  Histogram latency[G_N_ELEMENTS(timed_commands)];
};

HotplugMetrics *
hotplug_metrics_new(void)
{
  HotplugMetrics *metrics = g_new0(HotplugMetrics, 1);
  metrics->started = g_get_real_time();
  metrics->requests = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  metrics->events = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  return metrics;
}

void
hotplug_metrics_free(HotplugMetrics *metrics)
{
  if (metrics == NULL)
    return;
  g_hash_table_unref(metrics->requests);
  g_hash_table_unref(metrics->events);
  g_free(metrics);
}

static void
count(GHashTable *table, char *key /* transfer full */)
{
  guint64 *value = g_hash_table_lookup(table, key);
  if (value == NULL) {
    value = g_new0(guint64, 1);
    g_hash_table_insert(table, key, value);
  } else {
    g_free(key);
  }
  (*value)++;
}

void
hotplug_metrics_count_event(HotplugMetrics *metrics, const char *name)
{
  count(metrics->events, g_strdup(name));
}

void
hotplug_request_done(Hotplug *hotplug, const char *command, double seconds, const char *result)
{
  HotplugMetrics *metrics = hotplug->metrics;

  count(metrics->requests, g_strdup_printf("%s\t%s", command, result));
  if (g_strcmp0(result, "dry-run") == 0)
    return;
  for (gsize c = 0; c < G_N_ELEMENTS(timed_commands); c++) {
    if (g_strcmp0(timed_commands[c], command) != 0)
      continue;
    Histogram *histogram = &metrics->latency[c];
    gsize bucket = 0;
    while (bucket < N_BUCKETS && seconds > bucket_bounds[bucket])
      bucket++;
    histogram->counts[bucket]++;
    histogram->total++;
    histogram->sum += seconds;
  }
}

/* A label value in the text format: backslash, quote and newline escaped. */
static char *
label_value(const char *text)
{
  GString *escaped = g_string_new(NULL);
  for (const char *p = text; *p; p++) {
    if (*p == '\\' || *p == '"')
      g_string_append_c(escaped, '\\');
    if (*p == '\n')
      g_string_append(escaped, "\\n");
    else
      g_string_append_c(escaped, *p);
  }
  return g_string_free(escaped, FALSE);
}

static void
header(GString *out, const char *name, const char *type, const char *help)
{
  g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int
compare_keys(gconstpointer a, gconstpointer b)
{
  return g_strcmp0(*(const char *const *)a, *(const char *const *)b);
}

/* Return: (transfer container): the keys of @table, sorted, so the output is stable. */
static GPtrArray *
sorted_keys(GHashTable *table)
{
  GPtrArray *keys = g_ptr_array_new();
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init(&iter, table);
  while (g_hash_table_iter_next(&iter, &key, NULL))
    g_ptr_array_add(keys, key);
  g_ptr_array_sort(keys, compare_keys);
  return keys;
}

static void
print_requests(GString *out, HotplugMetrics *metrics, const char *vm)
{
  header(out, "hostdevd_requests_total", "counter",
         "Control requests that changed or would change devices, by command and result "
         "(ok, dry-run, or the error class).");
  g_autoptr(GPtrArray) keys = sorted_keys(metrics->requests);
  for (guint i = 0; i < keys->len; i++) {
    const char *key = g_ptr_array_index(keys, i);
    g_auto(GStrv) parts = g_strsplit(key, "\t", 2);
    guint64 *value = g_hash_table_lookup(metrics->requests, key);
    g_string_append_printf(out,
                           "hostdevd_requests_total{vm=\"%s\",command=\"%s\",result=\"%s\"} %"
                           G_GUINT64_FORMAT "\n", vm, parts[0], parts[1], *value);
  }
}

static void
print_events(GString *out, HotplugMetrics *metrics, const char *vm)
{
  header(out, "hostdevd_events_total", "counter", "Events sent to clients, by name.");
  g_autoptr(GPtrArray) keys = sorted_keys(metrics->events);
  for (guint i = 0; i < keys->len; i++) {
    const char *key = g_ptr_array_index(keys, i);
    guint64 *value = g_hash_table_lookup(metrics->events, key);
    g_string_append_printf(out, "hostdevd_events_total{vm=\"%s\",event=\"%s\"} %"
                           G_GUINT64_FORMAT "\n", vm, key, *value);
  }
}

static void
print_latency(GString *out, HotplugMetrics *metrics, const char *vm)
{
  header(out, "hostdevd_request_duration_seconds", "histogram",
         "Time from an attach or detach request's arrival to its reply (dry runs excluded).");
  for (gsize c = 0; c < G_N_ELEMENTS(timed_commands); c++) {
    const Histogram *histogram = &metrics->latency[c];
    guint64 cumulative = 0;
    for (gsize b = 0; b <= N_BUCKETS; b++) {
      cumulative += histogram->counts[b];
      char bound[G_ASCII_DTOSTR_BUF_SIZE] = "+Inf";
      if (b < N_BUCKETS)
        g_ascii_formatd(bound, sizeof bound, "%g", bucket_bounds[b]);
      g_string_append_printf(out,
                             "hostdevd_request_duration_seconds_bucket{vm=\"%s\",command=\"%s\","
                             "le=\"%s\"} %" G_GUINT64_FORMAT "\n",
                             vm, timed_commands[c], bound, cumulative);
    }
    char sum[G_ASCII_DTOSTR_BUF_SIZE];
    g_ascii_formatd(sum, sizeof sum, "%.6f", histogram->sum);
    g_string_append_printf(out,
                           "hostdevd_request_duration_seconds_sum{vm=\"%s\",command=\"%s\"} %s\n"
                           "hostdevd_request_duration_seconds_count{vm=\"%s\",command=\"%s\"} %"
                           G_GUINT64_FORMAT "\n",
                           vm, timed_commands[c], sum, vm, timed_commands[c], histogram->total);
  }
}

typedef struct {
  guint counts[HOSTDEV_TYPE_MDEV + 1][VM_DEVICE_STATE_LAST + 1];
  guint pending;
} DeviceCounts;

static void
count_device(const VmDevice *device, const char *phase, gpointer user_data)
{
  DeviceCounts *counts = user_data;
  counts->counts[device->hostdev->type][device->state]++;
  counts->pending += device->state == VM_DEVICE_DETACHING;
}

/* Every type and every state is printed, 0 included, so a series never vanishes. */
static void
print_devices(GString *out, Hotplug *hotplug, const char *vm)
{
  DeviceCounts counts = { { { 0 } }, 0 };

  hotplug_foreach_device(hotplug, count_device, &counts);
  header(out, "hostdevd_devices", "gauge",
         "The VM's devices by type and state (the states list-devices shows).");
  for (HostdevType type = HOSTDEV_TYPE_USB; type <= HOSTDEV_TYPE_MDEV; type++)
    for (VmDeviceState state = VM_DEVICE_ATTACHED; state <= VM_DEVICE_STATE_LAST; state++)
      g_string_append_printf(out, "hostdevd_devices{vm=\"%s\",type=\"%s\",state=\"%s\"} %u\n",
                             vm, hostdev_type_name(type), hotplug_device_state_listed(state),
                             counts.counts[type][state]);
  header(out, "hostdevd_pending_unplugs", "gauge",
         "Devices QEMU was asked to remove and the guest has not released yet.");
  g_string_append_printf(out, "hostdevd_pending_unplugs{vm=\"%s\"} %u\n", vm, counts.pending);
}

char *
hotplug_metrics_text(Hotplug *hotplug)
{
  HotplugMetrics *metrics = hotplug->metrics;
  GString *out = g_string_new(NULL);
  g_autofree char *vm = label_value(hotplug->vm);
  gint64 now = g_get_real_time();

  print_devices(out, hotplug, vm);
  print_requests(out, metrics, vm);
  print_latency(out, metrics, vm);
  print_events(out, metrics, vm);
  header(out, "hostdevd_start_time_seconds", "gauge", "When hostdevd started (Unix time).");
  g_string_append_printf(out, "hostdevd_start_time_seconds{vm=\"%s\"} %" G_GINT64_FORMAT "\n",
                         vm, metrics->started / G_USEC_PER_SEC);
  header(out, "hostdevd_uptime_seconds", "gauge", "Seconds since hostdevd started.");
  g_string_append_printf(out, "hostdevd_uptime_seconds{vm=\"%s\"} %" G_GINT64_FORMAT "\n", vm,
                         (now - metrics->started) / G_USEC_PER_SEC);
  return g_string_free(out, FALSE);
}
