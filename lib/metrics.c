/* metrics.c -- The responders' counters: a scoreboard file mapped by every
 * responder process of a host, one slot per process, and its Prometheus
 * text exposition (the sums over the slots).  Written by the request
 * path (gateway.c, exchange.c, stream.c), the ledger, the store and the
 * upkeep; read by metricsapi.c. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

#define SB_MAGIC   "mgscore"
#define SB_VERSION 5u   /* 2: the upstreams' counters; 3: lease admissions;
                         * 4: lease checks; 5: connections shed */

/* Histogram buckets: finite upper bounds, then +Inf; the widest family
 * sets the width of every histogram's row. */
#define HIST_BUCKETS_MAX 16
#define HIST_WIDTH (HIST_BUCKETS_MAX + 2)   /* buckets, +Inf, sum */

/* The model and project tables: values 0 .. MG_METRICS_LABELS - 1, then
 * "other". */
#define LABEL_ROWS (MG_METRICS_LABELS + 1)
#define LABEL_OTHER MG_METRICS_LABELS

/* What each label row counts. */
enum label_count {
	LC_REQUESTS = 0,
	LC_PROMPT,
	LC_COMPLETION,
	LC_COST,
	LC__COUNT
};

/* The state of a label table entry. */
enum label_state {
	LS_FREE = 0,       /* unused */
	LS_WRITING,        /* a process is writing its name */
	LS_READY           /* name set for good */
};

struct label_entry {
	_Atomic uint32_t state;
	char name[MG_METRICS_LABEL_MAX + 1];
};

/* A process's counters.  owner is its pid (0: free), start its start
 * time; a slot is folded and freed when that process is gone. */
struct sb_slot {
	_Atomic uint64_t owner;
	_Atomic uint64_t start;
	_Atomic int64_t gauge[MG_G__COUNT];
	_Atomic uint64_t count[MG_M__COUNT];
	_Atomic uint64_t requests[MG_MEP__COUNT][5][2];
	_Atomic uint64_t hist[MG_H__COUNT][HIST_WIDTH];
	_Atomic uint64_t models[LABEL_ROWS][LC__COUNT];
	_Atomic uint64_t projects[LABEL_ROWS][LC__COUNT];
	_Atomic uint64_t upstreams[MG_METRICS_UPSTREAMS][MG_METRICS_UPSTREAM_COLS];
};

struct sb_header {
	char magic[8];
	uint32_t version;
	uint32_t slots;
	uint64_t size;                 /* of the whole file: its layout */
	_Atomic uint64_t fold_seq;     /* odd while a slot is being folded */
	_Atomic uint64_t fold_owner;   /* pid of the process folding, 0: none */
	_Atomic int64_t watermark;     /* Unix seconds, 0: never read */
	struct label_entry models[MG_METRICS_LABELS];
	struct label_entry projects[MG_METRICS_LABELS];
};

struct sb_file {
	struct sb_header h;
	struct sb_slot slot[MG_METRICS_SLOTS];
};

struct mg_scoreboard {
	struct sb_file *f;
	size_t size;
};

/* --- the histograms' buckets ---------------------------------------------- */

/* Long calls (seconds, as microseconds). */
static const uint64_t long_bounds[] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
	10000000, 30000000, 60000000, 120000000, 300000000
};
/* Short steps: the gateway's own time, Postgres (microseconds). */
static const uint64_t short_bounds[] = {
	250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 5000000, 10000000
};
/* Admission batch sizes. */
static const uint64_t batch_bounds[] = { 1, 2, 4, 8, 16, 32, 64 };

struct hist_def {
	const uint64_t *bounds;
	int n;
	int micro;                     /* values are microseconds: shown as seconds */
};

#define BOUNDS(b, m) { b, (int)(sizeof(b) / sizeof(b[0])), m }

static const struct hist_def hists[MG_H__COUNT] = {
	[MG_H_REQUEST_CHAT] = BOUNDS(long_bounds, 1),
	[MG_H_REQUEST_EMBEDDINGS] = BOUNDS(long_bounds, 1),
	[MG_H_UPSTREAM_CHAT] = BOUNDS(long_bounds, 1),
	[MG_H_UPSTREAM_EMBEDDINGS] = BOUNDS(long_bounds, 1),
	[MG_H_OVERHEAD_CHAT] = BOUNDS(short_bounds, 1),
	[MG_H_OVERHEAD_EMBEDDINGS] = BOUNDS(short_bounds, 1),
	[MG_H_TTFT] = BOUNDS(long_bounds, 1),
	[MG_H_ADMIT_BATCH] = BOUNDS(batch_bounds, 0),
	[MG_H_DB_ADMIT] = BOUNDS(short_bounds, 1),
	[MG_H_DB_SETTLE] = BOUNDS(short_bounds, 1),
	[MG_H_DB_OTHER] = BOUNDS(short_bounds, 1),
};

_Static_assert(sizeof(long_bounds) / sizeof(long_bounds[0]) <= HIST_BUCKETS_MAX, "buckets");
_Static_assert(sizeof(short_bounds) / sizeof(short_bounds[0]) <= HIST_BUCKETS_MAX, "buckets");

/* --- the file ------------------------------------------------------------- */

/* Opens and maps path, (re)making it when it is new or not this layout.
 * The file lock keeps two processes from making it at once; a file
 * replaced while this one waited for the lock is opened again. */
struct mg_scoreboard *
mg_scoreboard_open(const char *path, char *err, size_t errlen)
{
	struct mg_scoreboard *sb = NULL;
	struct sb_file *f = MAP_FAILED;
	struct stat st, now;
	size_t size = sizeof(struct sb_file);
	int fd = -1, tries;

	for (tries = 0; tries < 5; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			mg_err_detail(err, errlen, "scoreboard %s: %s", path, strerror(errno));
			return NULL;
		}
		if (flock(fd, LOCK_EX) != 0 || fstat(fd, &st) != 0) {
			mg_err_detail(err, errlen, "scoreboard %s: %s", path, strerror(errno));
			goto fail;
		}
		if (stat(path, &now) == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev)
			break;
		close(fd);      /* replaced meanwhile: take the new one */
		fd = -1;
	}
	if (fd < 0) {
		mg_err_detail(err, errlen, "scoreboard %s: keeps being replaced", path);
		return NULL;
	}
	if (st.st_size != 0 && (size_t)st.st_size != size) {
		/* another build's layout: a new file for this one (processes of
		 * the other keep theirs until they stop) */
		if (unlink(path) != 0) {
			mg_err_detail(err, errlen, "scoreboard %s: %s", path, strerror(errno));
			goto fail;
		}
		close(fd);
		return mg_scoreboard_open(path, err, errlen);
	}
	if (st.st_size == 0 && ftruncate(fd, (off_t)size) != 0) {
		mg_err_detail(err, errlen, "scoreboard %s: %s", path, strerror(errno));
		goto fail;
	}
	f = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (f == MAP_FAILED) {
		mg_err_detail(err, errlen, "scoreboard %s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	if (memcmp(f->h.magic, SB_MAGIC, sizeof(SB_MAGIC)) != 0 || f->h.version != SB_VERSION ||
	    f->h.size != size || f->h.slots != MG_METRICS_SLOTS) {
		/* new (zeros from ftruncate), or not ours: start it afresh */
		memset(f, 0, size);
		f->h.version = SB_VERSION;
		f->h.slots = MG_METRICS_SLOTS;
		f->h.size = size;
		atomic_thread_fence(memory_order_release);
		memcpy(f->h.magic, SB_MAGIC, sizeof(SB_MAGIC));
		if (msync(f, sizeof(f->h), MS_SYNC) != 0) {
			/* only a hint: the mapping is shared all the same */
		}
	}
	sb = calloc(1, sizeof(*sb));
	if (sb == NULL) {
		mg_err_detail(err, errlen, "scoreboard %s: out of memory", path);
		goto fail;
	}
	sb->f = f;
	sb->size = size;
	flock(fd, LOCK_UN);
	close(fd);
	return sb;
fail:
	if (f != MAP_FAILED)
		munmap(f, size);
	close(fd);
	return NULL;
}

void
mg_scoreboard_close(struct mg_scoreboard *sb)
{
	if (sb == NULL)
		return;
	munmap(sb->f, sb->size);
	free(sb);
}

/* --- slots and their folding ------------------------------------------------ */

/* The start time of process pid (clock ticks since boot), 0 if unknown;
 * its state letter into *state when state is not NULL ('?' if unknown). */
static unsigned long long
process_stat(pid_t pid, char *state)
{
	char path[64], line[1024], *p;
	unsigned long long start = 0;
	FILE *f;
	int field;

	if (state != NULL)
		*state = '?';
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL) {
		fclose(f);
		return 0;
	}
	fclose(f);
	/* after the command, which may hold spaces and parentheses */
	p = strrchr(line, ')');
	if (p == NULL)
		return 0;
	if (state != NULL && p[1] == ' ' && p[2] != '\0')
		*state = p[2];
	/* the state is field 3, the start time field 22 */
	for (field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

static int
proc_alive(pid_t pid, unsigned long long start)
{
	unsigned long long now;
	char state;

	if (kill(pid, 0) != 0 && errno != EPERM)
		return 0;
	now = process_stat(pid, &state);
	/* a process killed but not yet waited for is gone all the same */
	if (state == 'Z' || state == 'X')
		return 0;
	/* a pid taken again by another process is not the owner */
	return now == 0 || start == 0 || now == start;
}

static void
add_all(_Atomic uint64_t *to, _Atomic uint64_t *from, size_t n)
{
	size_t i;

	/* the owner is gone, so nobody adds to from: add, then clear.  A
	 * fold cut short is done again by the next one, which counts what
	 * it had moved twice rather than lose it */
	for (i = 0; i < n; i++) {
		uint64_t v = atomic_load_explicit(&from[i], memory_order_relaxed);

		if (v != 0) {
			atomic_fetch_add_explicit(&to[i], v, memory_order_relaxed);
			atomic_store_explicit(&from[i], 0, memory_order_relaxed);
		}
	}
}

#define FLAT(a) ((_Atomic uint64_t *)(void *)(a))
#define NFLAT(a) (sizeof(a) / sizeof(_Atomic uint64_t))

/* Takes the fold lock (one folder at a time, taken over from a folder
 * that died); the fold sequence goes odd so scrapes wait. */
static void
fold_begin(struct mg_scoreboard *sb)
{
	struct sb_header *h = &sb->f->h;
	uint64_t me = (uint64_t)getpid();

	for (;;) {
		uint64_t cur = 0;

		if (atomic_compare_exchange_strong(&h->fold_owner, &cur, me))
			break;
		if (cur != me && !proc_alive((pid_t)cur, 0) &&
		    atomic_compare_exchange_strong(&h->fold_owner, &cur, me))
			break;
		{
			struct timespec ts = { 0, 100000 };

			nanosleep(&ts, NULL);
		}
	}
	if (atomic_load(&h->fold_seq) % 2 == 0)
		atomic_fetch_add(&h->fold_seq, 1);
}

static void
fold_end(struct mg_scoreboard *sb)
{
	struct sb_header *h = &sb->f->h;

	atomic_fetch_add(&h->fold_seq, 1);
	atomic_store(&h->fold_owner, 0);
}

/* Folds slot i into slot 0; the fold lock is held. */
static void
fold(struct mg_scoreboard *sb, int i)
{
	struct sb_slot *from = &sb->f->slot[i], *to = &sb->f->slot[0];
	int g;

	add_all(FLAT(to->count), FLAT(from->count), NFLAT(from->count));
	add_all(FLAT(to->requests), FLAT(from->requests), NFLAT(from->requests));
	add_all(FLAT(to->hist), FLAT(from->hist), NFLAT(from->hist));
	add_all(FLAT(to->models), FLAT(from->models), NFLAT(from->models));
	add_all(FLAT(to->projects), FLAT(from->projects), NFLAT(from->projects));
	add_all(FLAT(to->upstreams), FLAT(from->upstreams), NFLAT(from->upstreams));
	/* what was in flight in a dead process is not any more */
	for (g = 0; g < MG_G__COUNT; g++)
		atomic_store_explicit(&from->gauge[g], 0, memory_order_relaxed);
}

void
mg_scoreboard_retire(struct mg_scoreboard *sb, int i)
{
	if (sb == NULL || i <= 0 || i >= MG_METRICS_SLOTS)
		return;
	fold_begin(sb);
	fold(sb, i);
	atomic_store(&sb->f->slot[i].start, 0);
	atomic_store(&sb->f->slot[i].owner, 0);
	fold_end(sb);
}

int
mg_scoreboard_reap(struct mg_scoreboard *sb, int (*alive)(pid_t, unsigned long long))
{
	int i, n = 0;

	if (alive == NULL)
		alive = proc_alive;
	for (i = 1; i < MG_METRICS_SLOTS; i++) {
		struct sb_slot *s = &sb->f->slot[i];
		uint64_t owner = atomic_load(&s->owner);

		if (owner == 0 || alive((pid_t)owner, atomic_load(&s->start)))
			continue;
		fold_begin(sb);
		/* another process may have folded it, or taken it, meanwhile */
		if (atomic_load(&s->owner) == owner) {
			fold(sb, i);
			atomic_store(&s->start, 0);
			atomic_store(&s->owner, 0);
			n++;
		}
		fold_end(sb);
	}
	return n;
}

int
mg_scoreboard_claim(struct mg_scoreboard *sb, pid_t pid, unsigned long long start)
{
	int i;

	for (i = 1; i < MG_METRICS_SLOTS; i++) {
		struct sb_slot *s = &sb->f->slot[i];
		uint64_t free_owner = 0;

		if (atomic_compare_exchange_strong(&s->owner, &free_owner, (uint64_t)pid)) {
			atomic_store(&s->start, start);
			return i;
		}
	}
	return 0;
}

/* --- adding ----------------------------------------------------------------- */

void
mg_scoreboard_add(struct mg_scoreboard *sb, int i, enum mg_metric m, uint64_t n)
{
	if ((unsigned)m < MG_M__COUNT)
		atomic_fetch_add_explicit(&sb->f->slot[i].count[m], n, memory_order_relaxed);
}

void
mg_scoreboard_upstream(struct mg_scoreboard *sb, int i, int up, int col)
{
	if (up >= 0 && up < MG_METRICS_UPSTREAMS && col >= 0 && col < MG_METRICS_UPSTREAM_COLS)
		atomic_fetch_add_explicit(&sb->f->slot[i].upstreams[up][col], 1,
		    memory_order_relaxed);
}

void
mg_scoreboard_gauge(struct mg_scoreboard *sb, int i, enum mg_gauge g, int64_t delta)
{
	if ((unsigned)g < MG_G__COUNT)
		atomic_fetch_add_explicit(&sb->f->slot[i].gauge[g], delta, memory_order_relaxed);
}

void
mg_scoreboard_observe(struct mg_scoreboard *sb, int i, enum mg_hist h, uint64_t v)
{
	const struct hist_def *d;
	int b;

	if ((unsigned)h >= MG_H__COUNT)
		return;
	d = &hists[h];
	for (b = 0; b < d->n && v > d->bounds[b]; b++)
		;
	/* b == d->n: the +Inf bucket */
	atomic_fetch_add_explicit(&sb->f->slot[i].hist[h][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sb->f->slot[i].hist[h][HIST_WIDTH - 1], v,
	    memory_order_relaxed);
}

void
mg_scoreboard_request(struct mg_scoreboard *sb, int i, enum mg_metrics_ep ep, int status,
    int stream)
{
	int cls = status / 100;

	if ((unsigned)ep >= MG_MEP__COUNT)
		ep = MG_MEP_OTHER;
	if (cls < 1 || cls > 5)
		cls = 5;
	atomic_fetch_add_explicit(&sb->f->slot[i].requests[ep][cls - 1][stream != 0], 1,
	    memory_order_relaxed);
}

/* A hash of name, to start the search of a table at. */
static unsigned
label_hash(const char *name)
{
	unsigned h = 2166136261u;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

/* The row of name in table (found or added), or LABEL_OTHER when the
 * table is full.  The search starts at the name's hash, so that two
 * processes adding the same name meet at the same entry. */
static int
label_row(struct label_entry *table, const char *name)
{
	char key[MG_METRICS_LABEL_MAX + 1];
	unsigned start;
	int k;

	snprintf(key, sizeof(key), "%s", name);
	start = label_hash(key) % MG_METRICS_LABELS;
	for (k = 0; k < MG_METRICS_LABELS; k++) {
		struct label_entry *e = &table[(start + (unsigned)k) % MG_METRICS_LABELS];
		uint32_t st = atomic_load_explicit(&e->state, memory_order_acquire);
		int spins;

		if (st == LS_FREE) {
			uint32_t expect = LS_FREE;

			if (atomic_compare_exchange_strong(&e->state, &expect, LS_WRITING)) {
				memcpy(e->name, key, strlen(key) + 1);
				atomic_store_explicit(&e->state, LS_READY, memory_order_release);
				return (int)((start + (unsigned)k) % MG_METRICS_LABELS);
			}
			st = expect;
		}
		/* another process is writing this entry's name: a moment; one
		 * that died writing it leaves it to "other" */
		for (spins = 0; st == LS_WRITING && spins < 1000; spins++)
			st = atomic_load_explicit(&e->state, memory_order_acquire);
		if (st == LS_READY && strcmp(e->name, key) == 0)
			return (int)((start + (unsigned)k) % MG_METRICS_LABELS);
	}
	return LABEL_OTHER;
}

static void
label_add(_Atomic uint64_t row[LC__COUNT], uint64_t prompt, uint64_t completion)
{
	atomic_fetch_add_explicit(&row[LC_REQUESTS], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&row[LC_PROMPT], prompt, memory_order_relaxed);
	atomic_fetch_add_explicit(&row[LC_COMPLETION], completion, memory_order_relaxed);
}

void
mg_scoreboard_usage(struct mg_scoreboard *sb, int i, const char *model, const char *project,
    uint64_t prompt, uint64_t completion)
{
	struct sb_slot *s = &sb->f->slot[i];

	if (model != NULL)
		label_add(s->models[label_row(sb->f->h.models, model)], prompt, completion);
	if (project != NULL)
		label_add(s->projects[label_row(sb->f->h.projects, project)], prompt, completion);
}

void
mg_scoreboard_charge(struct mg_scoreboard *sb, int i, const char *model, const char *project,
    uint64_t cost)
{
	struct sb_slot *s = &sb->f->slot[i];

	atomic_fetch_add_explicit(&s->count[MG_M_COST_NANOUSD], cost, memory_order_relaxed);
	if (model != NULL)
		atomic_fetch_add_explicit(&s->models[label_row(sb->f->h.models, model)][LC_COST],
		    cost, memory_order_relaxed);
	if (project != NULL)
		atomic_fetch_add_explicit(&s->projects[label_row(sb->f->h.projects, project)][LC_COST],
		    cost, memory_order_relaxed);
}

void
mg_scoreboard_watermark(struct mg_scoreboard *sb, int64_t unix_seconds)
{
	atomic_store_explicit(&sb->f->h.watermark, unix_seconds, memory_order_relaxed);
}

/* --- the exposition ------------------------------------------------------- */

/* The sums of every slot: what a scrape shows. */
struct sums {
	uint64_t count[MG_M__COUNT];
	int64_t gauge[MG_G__COUNT];
	uint64_t requests[MG_MEP__COUNT][5][2];
	uint64_t hist[MG_H__COUNT][HIST_WIDTH];
	uint64_t models[LABEL_ROWS][LC__COUNT];
	uint64_t projects[LABEL_ROWS][LC__COUNT];
	uint64_t upstreams[MG_METRICS_UPSTREAMS][MG_METRICS_UPSTREAM_COLS];
	int processes;
};

static void
sum_into(uint64_t *to, _Atomic uint64_t *from, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		to[i] += atomic_load_explicit(&from[i], memory_order_relaxed);
}

static void
sum_slots(struct mg_scoreboard *sb, struct sums *t)
{
	struct sb_header *h = &sb->f->h;
	int i, g, tries;

	/* a fold moves counts from one slot to another: a sum taken while
	 * one ran could see them twice or not at all, so it is taken again
	 * (a folder that died leaves the sequence odd: after a while, the
	 * sum is taken all the same, as the next fold corrects it) */
	for (tries = 0; tries < 1000; tries++) {
		uint64_t seq = atomic_load_explicit(&h->fold_seq, memory_order_acquire);

		if (seq % 2 != 0 && tries < 999) {
			struct timespec ts = { 0, 20000 };

			nanosleep(&ts, NULL);
			continue;
		}
		memset(t, 0, sizeof(*t));
		for (i = 0; i < MG_METRICS_SLOTS; i++) {
			struct sb_slot *s = &sb->f->slot[i];

			if (i > 0 && atomic_load_explicit(&s->owner, memory_order_relaxed) == 0)
				continue;       /* free: folded, all zero */
			if (i > 0)
				t->processes++;
			sum_into(t->count, s->count, MG_M__COUNT);
			sum_into(&t->requests[0][0][0], FLAT(s->requests), NFLAT(s->requests));
			sum_into(&t->hist[0][0], FLAT(s->hist), NFLAT(s->hist));
			sum_into(&t->models[0][0], FLAT(s->models), NFLAT(s->models));
			sum_into(&t->projects[0][0], FLAT(s->projects), NFLAT(s->projects));
			sum_into(&t->upstreams[0][0], FLAT(s->upstreams), NFLAT(s->upstreams));
			for (g = 0; g < MG_G__COUNT; g++)
				t->gauge[g] += atomic_load_explicit(&s->gauge[g], memory_order_relaxed);
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&h->fold_seq, memory_order_relaxed) == seq)
			break;
	}
}

/* A family's HELP and TYPE lines. */
static enum mg_err
family(struct mg_buf *out, const char *name, const char *type, const char *help)
{
	return mg_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A value: a count, microseconds as seconds, or nano-USD as USD. */
enum unit {
	U_COUNT = 0,
	U_MICRO,
	U_NANO
};

static enum mg_err
value(struct mg_buf *out, uint64_t v, enum unit u)
{
	switch (u) {
	case U_MICRO:
		return mg_buf_addf(out, " %" PRIu64 ".%06" PRIu64 "\n", v / 1000000, v % 1000000);
	case U_NANO:
		return mg_buf_addf(out, " %" PRIu64 ".%09" PRIu64 "\n", v / 1000000000,
		    v % 1000000000);
	default:
		return mg_buf_addf(out, " %" PRIu64 "\n", v);
	}
}

/* One of the plain counter families: a run of enum mg_metric values, one
 * per label value (or one without a label). */
struct counter_family {
	const char *name;
	const char *help;
	const char *label;             /* NULL: one series */
	enum mg_metric first;
	int n;
	const char *values[8];
	enum unit unit;
};

static const struct counter_family counters[] = {
	{ "modelgate_tokens_total",
	  "Tokens of settled calls as the upstream counted them (billable), by type.",
	  "type", MG_M_TOKENS_PROMPT, 2, { "prompt", "completion" }, U_COUNT },
	{ "modelgate_cost_usd_total",
	  "What the gateway charged for calls, in USD (exact to 1e-9): the upstream's cost, "
	  "else the tokens at catalog prices, or the reservation the reaper charged.",
	  NULL, MG_M_COST_NANOUSD, 1, { NULL }, U_NANO },
	{ "modelgate_refusals_total",
	  "Requests refused at admission, by reason (the limit or check that refused).",
	  "reason", MG_M_REFUSED_INVALID_KEY, 7,
	  { "invalid_key", "model_not_allowed", "model_not_found", "spend_cap", "requests",
	    "tokens", "tokens_too_many" }, U_COUNT },
	{ "modelgate_db_errors_total",
	  "Postgres calls that failed, by kind (unavailable: no connection or no answer in time).",
	  "kind", MG_M_DB_UNAVAILABLE, 2, { "unavailable", "error" }, U_COUNT },
	{ "modelgate_db_pool_waits_total",
	  "Postgres calls that waited for a free pooled connection.",
	  NULL, MG_M_DB_POOL_WAITS, 1, { NULL }, U_COUNT },
	{ "modelgate_db_pool_wait_seconds_total",
	  "Time Postgres calls waited for a free pooled connection.",
	  NULL, MG_M_DB_POOL_WAIT_US, 1, { NULL }, U_MICRO },
	{ "modelgate_db_connections_shed_total",
	  "Idle pooled Postgres connections closed because they had carried a message "
	  "over 64 KiB (libpq keeps its buffers at that size); the next call opens one again.",
	  NULL, MG_M_DB_SHED, 1, { NULL }, U_COUNT },
	{ "modelgate_settlements_queued_total",
	  "Settlements queued for the settler thread.",
	  NULL, MG_M_SETTLE_QUEUED, 1, { NULL }, U_COUNT },
	{ "modelgate_settlements_lost_total",
	  "Settlements that could not be written (the reaper charges their reservations).",
	  NULL, MG_M_SETTLE_LOST, 1, { NULL }, U_COUNT },
	{ "modelgate_lease_admissions_total",
	  "Requests admitted from a lease, without a round trip to Postgres "
	  "(quota.admission = \"lease\").",
	  NULL, MG_M_LEASE_ADMITS, 1, { NULL }, U_COUNT },
	{ "modelgate_lease_refreshes_total",
	  "Lease refills sent to Postgres: a slice refilled before it runs out "
	  "(quota.admission = \"lease\").",
	  NULL, MG_M_LEASE_REFRESHES, 1, { NULL }, U_COUNT },
	{ "modelgate_lease_checks_total",
	  "Checks of Postgres's count of admission changes (keys, projects, models) "
	  "that tell whether the answers kept for leases are current "
	  "(quota.admission = \"lease\").",
	  NULL, MG_M_LEASE_CHECKS, 1, { NULL }, U_COUNT },
	{ "modelgate_reconcile_lookups_total",
	  "Generation lookups against the upstream's bill, by result.",
	  "result", MG_M_RECON_CONFIRMED, 5,
	  { "confirmed", "adjusted", "retried", "missing", "failed" }, U_COUNT },
	{ "modelgate_reconcile_adjustments_usd_total",
	  "Adjustments of charges to the upstream's bill, in USD (exact to 1e-9), by "
	  "direction: up raised a charge, down lowered one (by that much).",
	  "direction", MG_M_RECON_DRIFT_UP_NANOUSD, 2, { "up", "down" }, U_NANO },
};

static enum mg_err
write_counters(struct mg_buf *out, const struct sums *t)
{
	size_t f;
	int k;

	for (f = 0; f < sizeof(counters) / sizeof(counters[0]); f++) {
		const struct counter_family *c = &counters[f];

		if (family(out, c->name, "counter", c->help) != MG_OK)
			return MG_ERR_TOO_BIG;
		for (k = 0; k < c->n; k++) {
			enum mg_err rc = c->label != NULL ?
			    mg_buf_addf(out, "%s{%s=\"%s\"}", c->name, c->label, c->values[k]) :
			    mg_buf_adds(out, c->name);

			if (rc != MG_OK || value(out, t->count[c->first + k], c->unit) != MG_OK)
				return MG_ERR_TOO_BIG;
		}
	}
	return MG_OK;
}

static const char *const ep_names[MG_MEP__COUNT] = {
	"chat.completions", "embeddings", "models", "usage", "mcp", "dashboard", "healthz",
	"metrics", "other"
};

static enum mg_err
write_requests(struct mg_buf *out, const struct sums *t)
{
	static const char name[] = "modelgate_requests_total";
	int ep, cls, stream;

	if (family(out, name, "counter",
	    "Requests answered, by endpoint, status class and whether streamed.") != MG_OK)
		return MG_ERR_TOO_BIG;
	for (ep = 0; ep < MG_MEP__COUNT; ep++)
		for (cls = 0; cls < 5; cls++)
			for (stream = 0; stream < 2; stream++) {
				uint64_t v = t->requests[ep][cls][stream];

				/* the series seen so far; those of the calls, always */
				if (v == 0 && !(ep <= MG_MEP_EMBEDDINGS && cls == 1 && !stream))
					continue;
				if (mg_buf_addf(out, "%s{endpoint=\"%s\",status_class=\"%dxx\","
				    "stream=\"%s\"}", name, ep_names[ep], cls + 1,
				    stream ? "true" : "false") != MG_OK ||
				    value(out, v, U_COUNT) != MG_OK)
					return MG_ERR_TOO_BIG;
			}
	return MG_OK;
}

/* A bucket bound as Prometheus writes it (le="0.005"). */
static enum mg_err
bound(struct mg_buf *out, uint64_t b, int micro)
{
	char text[32];
	size_t n;

	if (!micro)
		return mg_buf_addf(out, "%" PRIu64, b);
	snprintf(text, sizeof(text), "%" PRIu64 ".%06" PRIu64, b / 1000000, b % 1000000);
	n = strlen(text);
	while (text[n - 1] == '0')
		text[--n] = '\0';
	if (text[n - 1] == '.')
		text[--n] = '\0';
	return mg_buf_add(out, text, n);
}

/* One histogram's series: name, an optional label pair (label="value",),
 * its buckets, sum and count. */
static enum mg_err
histogram(struct mg_buf *out, const char *name, const char *label, const char *lvalue,
    enum mg_hist h, const struct sums *t)
{
	const struct hist_def *d = &hists[h];
	const uint64_t *row = t->hist[h];
	uint64_t cum = 0;
	char lab[96] = "";
	int b;

	if (label != NULL)
		snprintf(lab, sizeof(lab), "%s=\"%s\"", label, lvalue);
	for (b = 0; b <= d->n; b++) {
		cum += row[b];
		if (mg_buf_addf(out, "%s_bucket{%s%sle=\"", name, lab, lab[0] ? "," : "") != MG_OK)
			return MG_ERR_TOO_BIG;
		if ((b < d->n ? bound(out, d->bounds[b], d->micro) : mg_buf_adds(out, "+Inf")) != MG_OK ||
		    mg_buf_adds(out, "\"}") != MG_OK || value(out, cum, U_COUNT) != MG_OK)
			return MG_ERR_TOO_BIG;
	}
	if (mg_buf_addf(out, "%s_sum%s%s%s", name, lab[0] ? "{" : "", lab, lab[0] ? "}" : "") != MG_OK ||
	    value(out, row[HIST_WIDTH - 1], d->micro ? U_MICRO : U_COUNT) != MG_OK ||
	    mg_buf_addf(out, "%s_count%s%s%s", name, lab[0] ? "{" : "", lab, lab[0] ? "}" : "") != MG_OK ||
	    value(out, cum, U_COUNT) != MG_OK)
		return MG_ERR_TOO_BIG;
	return MG_OK;
}

/* The histogram families: one histogram, or one per operation. */
struct hist_family {
	const char *name;
	const char *help;
	enum mg_hist first;
	int n;                         /* 1: no label; 2: chat, embeddings */
	const char *label;
	const char *values[3];
};

static const struct hist_family hist_families[] = {
	{ "modelgate_request_duration_seconds",
	  "Duration of model calls, from the request's arrival to its end, by operation.",
	  MG_H_REQUEST_CHAT, 2, "operation", { "chat", "embeddings" } },
	{ "modelgate_upstream_duration_seconds",
	  "Duration of the upstream call of model calls (a stream's to its end), by operation.",
	  MG_H_UPSTREAM_CHAT, 2, "operation", { "chat", "embeddings" } },
	{ "modelgate_overhead_seconds",
	  "The gateway's own share of model calls: request duration minus upstream duration.",
	  MG_H_OVERHEAD_CHAT, 2, "operation", { "chat", "embeddings" } },
	{ "modelgate_time_to_first_token_seconds",
	  "Time from a streamed chat request's arrival to its first content event sent.",
	  MG_H_TTFT, 1, NULL, { NULL } },
	{ "modelgate_admission_batch_size",
	  "Requests admitted together in one Postgres statement.",
	  MG_H_ADMIT_BATCH, 1, NULL, { NULL } },
	{ "modelgate_db_call_duration_seconds",
	  "Duration of Postgres calls, waiting for a connection included, by call.",
	  MG_H_DB_ADMIT, 3, "call", { "admit", "settle", "other" } },
};

static enum mg_err
write_histograms(struct mg_buf *out, const struct sums *t)
{
	size_t f;
	int k;

	for (f = 0; f < sizeof(hist_families) / sizeof(hist_families[0]); f++) {
		const struct hist_family *hf = &hist_families[f];

		if (family(out, hf->name, "histogram", hf->help) != MG_OK)
			return MG_ERR_TOO_BIG;
		for (k = 0; k < hf->n; k++)
			if (histogram(out, hf->name, hf->label, hf->values[k],
			    (enum mg_hist)(hf->first + k), t) != MG_OK)
				return MG_ERR_TOO_BIG;
	}
	return MG_OK;
}

static enum mg_err
write_gauges(struct mg_buf *out, const struct sums *t, int64_t watermark)
{
	static const struct {
		const char *name;
		const char *help;
		enum mg_gauge g;
	} gauges[] = {
		{ "modelgate_requests_in_flight", "Requests being served now.", MG_G_IN_FLIGHT },
		{ "modelgate_streams_open", "Streamed answers under way now.", MG_G_STREAMS_OPEN },
		{ "modelgate_settlement_queue_length", "Settlements waiting for the settler thread.",
		  MG_G_SETTLE_QUEUE },
	};
	size_t i;

	for (i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
		if (family(out, gauges[i].name, "gauge", gauges[i].help) != MG_OK ||
		    mg_buf_addf(out, "%s %" PRId64 "\n", gauges[i].name, t->gauge[gauges[i].g]) != MG_OK)
			return MG_ERR_TOO_BIG;
	if (family(out, "modelgate_responder_processes", "gauge",
	    "Responder processes with a slot in this host's scoreboard.") != MG_OK ||
	    mg_buf_addf(out, "modelgate_responder_processes %d\n", t->processes) != MG_OK)
		return MG_ERR_TOO_BIG;
	if (watermark != 0 &&
	    (family(out, "modelgate_reconcile_watermark_timestamp_seconds", "gauge",
	    "Reconciled-through watermark: every request older is settled and reconciled "
	    "(Unix time; the time it was read when none is waiting).") != MG_OK ||
	    mg_buf_addf(out, "modelgate_reconcile_watermark_timestamp_seconds %" PRId64 "\n",
	    watermark) != MG_OK))
		return MG_ERR_TOO_BIG;
	return MG_OK;
}

enum mg_err
mg_metrics_label_escape(struct mg_buf *out, const char *s)
{
	static const char replacement[] = "\xef\xbf\xbd";
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t n = 1, k;
		unsigned c = *p;
		enum mg_err rc;

		if (c == '\\')
			rc = mg_buf_adds(out, "\\\\");
		else if (c == '"')
			rc = mg_buf_adds(out, "\\\"");
		else if (c == '\n')
			rc = mg_buf_adds(out, "\\n");
		else if (c < 0x20 || c == 0x7f)
			rc = mg_buf_adds(out, replacement);
		else if (c < 0x80)
			rc = mg_buf_add(out, p, 1);
		else {
			unsigned min, cp;

			/* a UTF-8 sequence, whole and shortest, or U+FFFD */
			if (c >= 0xc2 && c <= 0xdf) {
				n = 2; cp = c & 0x1f; min = 0x80;
			} else if (c >= 0xe0 && c <= 0xef) {
				n = 3; cp = c & 0x0f; min = 0x800;
			} else if (c >= 0xf0 && c <= 0xf4) {
				n = 4; cp = c & 0x07; min = 0x10000;
			} else {
				n = 0; cp = 0; min = 1;
			}
			for (k = 1; k < n; k++) {
				if ((p[k] & 0xc0) != 0x80)
					break;
				cp = (cp << 6) | (p[k] & 0x3f);
			}
			if (n == 0 || k < n || cp < min || cp > 0x10ffff ||
			    (cp >= 0xd800 && cp <= 0xdfff)) {
				n = 1;
				rc = mg_buf_adds(out, replacement);
			} else {
				rc = mg_buf_add(out, p, n);
			}
		}
		if (rc != MG_OK)
			return rc;
		p += n;
	}
	return MG_OK;
}

/* The model or project families of a label table. */
static enum mg_err
write_labels(struct mg_buf *out, const char *what, const struct label_entry *table,
    const uint64_t rows[LABEL_ROWS][LC__COUNT])
{
	static const struct {
		const char *suffix;
		const char *help;
		enum label_count lc;
		enum unit unit;
	} parts[] = {
		{ "requests_total", "Settled model calls", LC_REQUESTS, U_COUNT },
		{ "prompt_tokens_total", "Prompt tokens of settled calls", LC_PROMPT, U_COUNT },
		{ "completion_tokens_total", "Completion tokens of settled calls", LC_COMPLETION,
		  U_COUNT },
		{ "cost_usd_total", "What settlement charged, in USD", LC_COST, U_NANO },
	};
	size_t i;
	int r;

	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		char name[96], help[160];

		snprintf(name, sizeof(name), "modelgate_%s_%s", what, parts[i].suffix);
		snprintf(help, sizeof(help), "%s, by %s (the first %d seen; then \"other\").",
		    parts[i].help, what, MG_METRICS_LABELS);
		if (family(out, name, "counter", help) != MG_OK)
			return MG_ERR_TOO_BIG;
		for (r = 0; r < LABEL_ROWS; r++) {
			const char *label = "other";

			if (r < MG_METRICS_LABELS) {
				if (atomic_load_explicit(&((struct label_entry *)table)[r].state,
				    memory_order_acquire) != LS_READY)
					continue;
				label = table[r].name;
			} else if (rows[r][LC_REQUESTS] == 0) {
				continue;
			}
			if (mg_buf_addf(out, "%s{%s=\"", name, what) != MG_OK ||
			    mg_metrics_label_escape(out, label) != MG_OK ||
			    mg_buf_adds(out, "\"}") != MG_OK ||
			    value(out, rows[r][parts[i].lc], parts[i].unit) != MG_OK)
				return MG_ERR_TOO_BIG;
		}
	}
	return MG_OK;
}

/* The upstreams' calls by outcome and their cooldowns, every process
 * together (their state, which is each process's own, is written by
 * route.c).  Upstream names are letters, digits and "_-." (conf.c). */
static enum mg_err
write_upstreams(struct mg_buf *out, const struct sums *t, const struct mg_metrics_view *v)
{
	int i, o;

	if (v->n_upstreams <= 0)
		return MG_OK;
	if (family(out, "modelgate_upstream_calls_total", "counter",
	    "Upstream calls by outcome, every responder process of the host.") != MG_OK)
		return MG_ERR_TOO_BIG;
	for (i = 0; i < v->n_upstreams && i < MG_METRICS_UPSTREAMS; i++)
		for (o = 0; o < v->n_outcomes && o < MG_METRICS_UPSTREAM_COOLDOWN; o++)
			if (mg_buf_addf(out, "modelgate_upstream_calls_total{upstream=\"%s\","
			    "outcome=\"%s\"}", v->upstreams[i], v->outcomes[o]) != MG_OK ||
			    value(out, t->upstreams[i][o], U_COUNT) != MG_OK)
				return MG_ERR_TOO_BIG;
	if (family(out, "modelgate_upstream_cooldowns_total", "counter",
	    "Cooldowns started, every responder process of the host.") != MG_OK)
		return MG_ERR_TOO_BIG;
	for (i = 0; i < v->n_upstreams && i < MG_METRICS_UPSTREAMS; i++)
		if (mg_buf_addf(out, "modelgate_upstream_cooldowns_total{upstream=\"%s\"}",
		    v->upstreams[i]) != MG_OK ||
		    value(out, t->upstreams[i][MG_METRICS_UPSTREAM_COOLDOWN], U_COUNT) != MG_OK)
			return MG_ERR_TOO_BIG;
	return MG_OK;
}

enum mg_err
mg_scoreboard_write(struct mg_scoreboard *sb, const struct mg_metrics_view *v,
    struct mg_buf *out)
{
	struct sums *t = malloc(sizeof(*t));
	enum mg_err rc = MG_ERR_TOO_BIG;

	if (t == NULL)
		return MG_ERR_NOMEM;
	sum_slots(sb, t);
	if (family(out, "modelgate_build_info", "gauge",
	    "The responders' version; always 1.") != MG_OK ||
	    mg_buf_adds(out, "modelgate_build_info{version=\"") != MG_OK ||
	    mg_metrics_label_escape(out, v->version) != MG_OK ||
	    mg_buf_adds(out, "\"} 1\n") != MG_OK)
		goto out;
	if (write_requests(out, t) != MG_OK || write_counters(out, t) != MG_OK ||
	    write_upstreams(out, t, v) != MG_OK ||
	    write_histograms(out, t) != MG_OK ||
	    write_gauges(out, t, atomic_load(&sb->f->h.watermark)) != MG_OK)
		goto out;
	if (v->per_model && write_labels(out, "model", sb->f->h.models, t->models) != MG_OK)
		goto out;
	if (v->per_project &&
	    write_labels(out, "project", sb->f->h.projects, t->projects) != MG_OK)
		goto out;
	rc = MG_OK;
out:
	free(t);
	return rc;
}

/* --- who may read them ----------------------------------------------------- */

/* Parses one address (as text, len bytes) into family and addr. */
static int
parse_addr(const char *text, size_t len, int *family, unsigned char addr[16])
{
	char buf[INET6_ADDRSTRLEN + 1];

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, addr) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		*family = AF_INET6;
		if (memcmp(addr, mapped, 12) == 0) {
			memmove(addr, addr + 12, 4);
			memset(addr + 4, 0, 12);
			*family = AF_INET;
		}
		return 0;
	}
	return -1;
}

int
mg_metrics_allow_parse(const char *list, struct mg_netmask *nets, int max, int *n, char *err,
    size_t errlen)
{
	const char *p = list;

	*n = 0;
	for (;;) {
		size_t len, alen;
		const char *slash;
		struct mg_netmask m;
		int b;

		p += strspn(p, ", \t");
		if (*p == '\0')
			return 0;
		len = strcspn(p, ", \t");
		slash = memchr(p, '/', len);
		alen = slash != NULL ? (size_t)(slash - p) : len;
		memset(&m, 0, sizeof(m));
		if (parse_addr(p, alen, &m.family, m.addr) != 0)
			goto bad;
		m.bits = m.family == AF_INET ? 32 : 128;
		if (slash != NULL) {
			const char *q = slash + 1;
			size_t nd = len - alen - 1;

			if (nd == 0 || nd > 3 || strspn(q, "0123456789") < nd)
				goto bad;
			for (b = 0; q < slash + 1 + nd; q++)
				b = b * 10 + (*q - '0');
			if (b > m.bits)
				goto bad;
			m.bits = b;
		}
		if (*n >= max) {
			mg_err_detail(err, errlen, "more than %d networks", max);
			return -1;
		}
		nets[(*n)++] = m;
		p += len;
		continue;
bad:
		mg_err_detail(err, errlen, "'%.*s' is not an address or a network (CIDR)",
		    (int)(len < 64 ? len : 64), p);
		return -1;
	}
}

int
mg_metrics_allowed(const struct mg_netmask *nets, int n, const char *addr)
{
	unsigned char a[16];
	int family, i;

	if (addr == NULL || parse_addr(addr, strlen(addr), &family, a) != 0)
		return 0;
	for (i = 0; i < n; i++) {
		const struct mg_netmask *m = &nets[i];
		int whole = m->bits / 8, rest = m->bits % 8;

		if (m->family != family || memcmp(a, m->addr, (size_t)whole) != 0)
			continue;
		if (rest == 0 || ((a[whole] ^ m->addr[whole]) & (0xff << (8 - rest)) & 0xff) == 0)
			return 1;
	}
	return 0;
}

/* --- this process ------------------------------------------------------------ */

static struct mg_scoreboard *self_sb;
static int self_slot;
static int self_models, self_projects;

int
mg_metrics_attach(const char *path, int per_model, int per_project, char *err, size_t errlen)
{
	pid_t pid = getpid();

	self_sb = mg_scoreboard_open(path, err, errlen);
	if (self_sb == NULL)
		return -1;
	mg_scoreboard_reap(self_sb, NULL);
	self_slot = mg_scoreboard_claim(self_sb, pid, process_stat(pid, NULL));
	self_models = per_model;
	self_projects = per_project;
	return 0;
}

void
mg_metrics_detach(void)
{
	if (self_sb == NULL)
		return;
	mg_scoreboard_retire(self_sb, self_slot);
	mg_scoreboard_close(self_sb);
	self_sb = NULL;
	self_slot = 0;
}

struct mg_scoreboard *
mg_metrics_scoreboard(void)
{
	return self_sb;
}

void
mg_metrics_count(enum mg_metric m, uint64_t n)
{
	if (self_sb != NULL && n != 0)
		mg_scoreboard_add(self_sb, self_slot, m, n);
}

void
mg_metrics_upstream(int up, int outcome)
{
	if (self_sb != NULL)
		mg_scoreboard_upstream(self_sb, self_slot, up, outcome);
}

void
mg_metrics_gauge(enum mg_gauge g, int64_t delta)
{
	if (self_sb != NULL)
		mg_scoreboard_gauge(self_sb, self_slot, g, delta);
}

void
mg_metrics_observe(enum mg_hist h, uint64_t v)
{
	if (self_sb != NULL)
		mg_scoreboard_observe(self_sb, self_slot, h, v);
}

void
mg_metrics_request(enum mg_metrics_ep ep, int status, int stream)
{
	if (self_sb != NULL)
		mg_scoreboard_request(self_sb, self_slot, ep, status, stream);
}

void
mg_metrics_usage(const char *model, const char *project, long long prompt,
    long long completion)
{
	uint64_t p = prompt > 0 ? (uint64_t)prompt : 0, c = completion > 0 ? (uint64_t)completion : 0;

	if (self_sb == NULL)
		return;
	mg_scoreboard_add(self_sb, self_slot, MG_M_TOKENS_PROMPT, p);
	mg_scoreboard_add(self_sb, self_slot, MG_M_TOKENS_COMPLETION, c);
	if (self_models || self_projects)
		mg_scoreboard_usage(self_sb, self_slot, self_models ? model : NULL,
		    self_projects ? project : NULL, p, c);
}

void
mg_metrics_charge(const char *model, const char *project, uint64_t cost)
{
	if (self_sb == NULL || cost == 0)
		return;
	mg_scoreboard_charge(self_sb, self_slot, self_models ? model : NULL,
	    self_projects ? project : NULL, cost);
}

void
mg_metrics_watermark(int64_t unix_seconds)
{
	if (self_sb != NULL)
		mg_scoreboard_watermark(self_sb, unix_seconds);
}
