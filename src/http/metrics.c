/*
 * GET /metrics (docs/http.md): counters and gauges kept under one mutex,
 * rendered in the Prometheus text format 0.0.4.  Label values are ours
 * (statuses from a fixed list, HTTP codes, reasons): nothing a client or
 * the sandbox sends becomes a label, so the output cannot be forged and
 * its size stays fixed.
 */
#include "http.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const statuses[] = {
	"ok", "exited", "signaled", "timeout", "cpu-time", "memory", "disk", "output-limit",
	"sandbox-error", "usage-error", "busy", "unreachable", "cancelled", "other",
};
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0]))
static const char *const cell_statuses[] = { "ok", "error", "interrupted", "killed", "other" };
#define N_CELL (sizeof(cell_statuses) / sizeof(cell_statuses[0]))
static const char *const reasons[] = { "auth", "rate", "concurrency", "caps", "timeout", "sessions" };
#define N_REASON (sizeof(reasons) / sizeof(reasons[0]))
static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define N_BUCKET (sizeof(buckets) / sizeof(buckets[0]))

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long codes[600], runs[N_STATUS], cells[N_CELL], rejects[N_REASON];
static unsigned long long hist[N_BUCKET + 1], hist_count;
static double hist_sum, last_pass;
static long gauges[HG_COUNT];
static bool ready;
static struct ht_warm_counts warm;
static double warm_at; /* 0: no listing yet */

static size_t find(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s != NULL && strcmp(list[i], s) == 0)
			return i;
	return n - 1;
}

void ht_metric_response(unsigned code)
{
	pthread_mutex_lock(&mu);
	if (code < 600)
		codes[code]++;
	pthread_mutex_unlock(&mu);
}

void ht_metric_run(const char *status, double secs)
{
	size_t b;

	pthread_mutex_lock(&mu);
	runs[find(statuses, N_STATUS, status)]++;
	for (b = 0; b < N_BUCKET && secs > buckets[b]; b++)
		;
	hist[b]++;
	hist_count++;
	hist_sum += secs;
	pthread_mutex_unlock(&mu);
}

void ht_metric_cell(const char *status)
{
	pthread_mutex_lock(&mu);
	cells[find(cell_statuses, N_CELL, status)]++;
	pthread_mutex_unlock(&mu);
}

void ht_metric_reject(const char *reason)
{
	size_t i;

	pthread_mutex_lock(&mu);
	for (i = 0; i < N_REASON && strcmp(reasons[i], reason) != 0; i++)
		;
	if (i < N_REASON)
		rejects[i]++;
	pthread_mutex_unlock(&mu);
}

void ht_metric_gauge(enum ht_gauge g, int delta)
{
	pthread_mutex_lock(&mu);
	gauges[g] += delta;
	pthread_mutex_unlock(&mu);
}

void ht_metric_ready(bool r, double pass)
{
	pthread_mutex_lock(&mu);
	ready = r;
	if (pass > 0)
		last_pass = pass;
	pthread_mutex_unlock(&mu);
}

void ht_metric_warm(const struct ht_warm_counts *c, double at)
{
	pthread_mutex_lock(&mu);
	warm = *c;
	warm_at = at;
	pthread_mutex_unlock(&mu);
}

static void put(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render(FILE *f)
{
	unsigned long long cum = 0;

	put(f, "sandcell_http_requests_total", "counter", "Responses by HTTP code.");
	for (unsigned c = 100; c < 600; c++)
		if (codes[c])
			fprintf(f, "sandcell_http_requests_total{code=\"%u\"} %llu\n", c, codes[c]);
	put(f, "sandcell_http_runs_total", "counter", "One-shot runs by report status.");
	for (size_t i = 0; i < N_STATUS; i++)
		fprintf(f, "sandcell_http_runs_total{status=\"%s\"} %llu\n", statuses[i], runs[i]);
	put(f, "sandcell_http_run_duration_seconds", "histogram",
	    "One-shot run latency, request received to report ready.");
	for (size_t b = 0; b < N_BUCKET; b++) {
		cum += hist[b];
		fprintf(f, "sandcell_http_run_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[b], cum);
	}
	fprintf(f, "sandcell_http_run_duration_seconds_bucket{le=\"+Inf\"} %llu\n", hist_count);
	fprintf(f, "sandcell_http_run_duration_seconds_sum %.6f\n", hist_sum);
	fprintf(f, "sandcell_http_run_duration_seconds_count %llu\n", hist_count);
	put(f, "sandcell_http_cells_total", "counter", "Session cells by done status.");
	for (size_t i = 0; i < N_CELL; i++)
		fprintf(f, "sandcell_http_cells_total{status=\"%s\"} %llu\n", cell_statuses[i], cells[i]);
	put(f, "sandcell_http_rejected_total", "counter", "Requests refused by the front end, by reason.");
	for (size_t i = 0; i < N_REASON; i++)
		fprintf(f, "sandcell_http_rejected_total{reason=\"%s\"} %llu\n", reasons[i], rejects[i]);
	put(f, "sandcell_http_runs_in_flight", "gauge",
	    "One-shot runs sent to the warm server and not answered yet (queued there or running).");
	fprintf(f, "sandcell_http_runs_in_flight %ld\n", gauges[HG_RUNS_IN_FLIGHT]);
	put(f, "sandcell_http_sessions_live", "gauge", "Sessions held by the front end.");
	fprintf(f, "sandcell_http_sessions_live %ld\n", gauges[HG_SESSIONS]);
	put(f, "sandcell_http_ready", "gauge", "1 when /readyz says ready.");
	fprintf(f, "sandcell_http_ready %d\n", ready ? 1 : 0);
	put(f, "sandcell_http_selftest_last_pass_timestamp_seconds", "gauge",
	    "Unix time of the last passing sandcell selftest (0: none yet).");
	fprintf(f, "sandcell_http_selftest_last_pass_timestamp_seconds %.3f\n", last_pass);
	if (warm_at == 0)
		return; /* no listing yet: no value is better than a made-up 0 */
	put(f, "sandcell_warm_spares", "gauge", "Spare workers ready on the warm server.");
	fprintf(f, "sandcell_warm_spares %ld\n", warm.spares);
	put(f, "sandcell_warm_runs_in_flight", "gauge", "One-shot runs in flight on the warm server (all its clients).");
	fprintf(f, "sandcell_warm_runs_in_flight %ld\n", warm.runs);
	put(f, "sandcell_warm_queue_depth", "gauge", "Clients waiting for a slot of the warm server.");
	fprintf(f, "sandcell_warm_queue_depth %ld\n", warm.queued);
	put(f, "sandcell_warm_sessions_live", "gauge", "Live sessions on the warm server (all its clients).");
	fprintf(f, "sandcell_warm_sessions_live %ld\n", warm.sessions);
	put(f, "sandcell_warm_listing_timestamp_seconds", "gauge",
	    "Unix time of the warm server's listing the sandcell_warm_ values come from.");
	fprintf(f, "sandcell_warm_listing_timestamp_seconds %.3f\n", warm_at);
}

char *ht_metrics_render(size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (f == NULL)
		return NULL;
	pthread_mutex_lock(&mu);
	render(f);
	pthread_mutex_unlock(&mu);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}
