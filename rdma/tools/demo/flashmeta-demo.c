/* flashmeta-demo.c -- the main job: a FlashCopy mapping under load, every
 * part real, on one host: over verbs when it has an RDMA device with an
 * IPv4 address (demo_run.c transport_choose), else over shm.
 *
 * The parent starts the owner daemon, creates the mapping, forks the client
 * processes and drives the phases (the protocol between them, and who
 * writes what, is the design comment of demo.h): phase 1 fills the source
 * through the engine, the trigger (map-prepare, map-start) is taken while
 * the clients are paused with golden.img saved as the source at that
 * moment, phase 2 runs random I/O on both volumes from every thread of
 * every client, checking target reads in line.  At the end a fresh client
 * (the verifier) reads the whole target through the engine and compares it
 * with golden.img plus every target write the clients logged -- the
 * snapshot invariant, byte for byte.
 *
 * The report also says what the figures cost and what they ran on: the
 * owner's CPU time over phase 2 (from /proc) beside the clients' (their
 * getrusage), per I/O decision; each client's confirmation cache; the
 * transport and why it was chosen, the pool's persistence as the owner
 * reports it.
 *
 * Parts: demo_opts.c (the command line), demo_run.c (run dir, owner),
 * demo_client.c, demo_io.c and demo_verify.c (client processes, their I/O,
 * the verifier), demo_report.c (text and JSON), demo_host.c (CPU time,
 * RDMA devices), demo_util.c (pattern, pipes).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo.h"
#include "flashmeta/error.h"

#define MiB (UINT64_C(1) << 20)

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ------------------------------------------------------------ children */

struct child {
	pid_t pid;
	int to, from;                /* our ends */
	int exit_status;             /* -1 running */
};

static struct child g_kids[DEMO_MAX_CLIENTS + 1];
static unsigned g_nkids;

static int child_start(struct demo_cfg *cfg, struct child *k, int idx)
{
	int to[2], from[2];

	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		return fm_err(-errno, "pipe: %s", strerror(errno));
	fflush(NULL);
	k->pid = fork();
	if (k->pid < 0)
		return fm_err(-errno, "fork: %s", strerror(errno));
	if (k->pid == 0) {
		int rc;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		close(to[1]);
		close(from[0]);
		for (unsigned i = 0; i < g_nkids; i++) { /* -1 once waited for */
			if (g_kids[i].to >= 0)
				close(g_kids[i].to);
			if (g_kids[i].from >= 0)
				close(g_kids[i].from);
		}
		rc = idx < 0 ? demo_verifier_main(cfg, from[1])
			     : demo_client_main(cfg, (unsigned)idx, to[0], from[1]);
		fflush(NULL);
		_exit(rc);
	}
	close(to[0]);
	close(from[1]);
	k->to = to[1];
	k->from = from[0];
	k->exit_status = -1;
	return 0;
}

/* wait for k's exit, up to timeout_ms (then SIGKILL) */
static int child_wait(struct child *k, int timeout_ms)
{
	uint64_t end = demo_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int st;

	if (k->pid <= 0)
		return k->exit_status;
	for (;;) {
		pid_t p = waitpid(k->pid, &st, WNOHANG);

		if (p == k->pid)
			break;
		if (demo_now_ns() > end || g_stop) {
			kill(k->pid, SIGKILL);
			waitpid(k->pid, &st, 0);
			break;
		}
		usleep(5000);
	}
	k->pid = 0;
	close(k->to);
	close(k->from);
	k->to = k->from = -1;
	k->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return k->exit_status;
}

static void kids_kill(void)
{
	for (unsigned i = 0; i < g_nkids; i++)
		if (g_kids[i].pid > 0) {
			kill(g_kids[i].pid, SIGKILL);
			child_wait(&g_kids[i], 1000);
		}
}

static void kids_cmd(unsigned n, char cmd)
{
	for (unsigned i = 0; i < n; i++)
		(void)demo_write_all(g_kids[i].to, &cmd, 1);
}

/* the next message of child i: its header, and its text if an error */
static int kid_msg(unsigned i, const char *who, struct demo_msg *m, int timeout_ms)
{
	char text[DEMO_MSG_MAX + 1];
	int rc = demo_read_all(g_kids[i].from, m, sizeof(*m), timeout_ms);

	if (rc == -EINTR && g_stop)
		return fm_err(-EINTR, "interrupted");
	if (rc == -ETIMEDOUT)
		return fm_err(rc, "%s: no answer in %d s", who, timeout_ms / 1000);
	if (rc)
		return fm_err(rc, "%s: died (%s; exit status %d)", who, strerror(-rc),
			      child_wait(&g_kids[i], 2000));
	if (m->type == DEMO_MSG_ERROR) {
		uint32_t n = m->len < DEMO_MSG_MAX ? m->len : DEMO_MSG_MAX;

		if (demo_read_all(g_kids[i].from, text, n, 5000))
			n = 0;
		text[n] = 0;
		return fm_err(-EIO, "%s", text);
	}
	return 0;
}

static int kids_wait_all(unsigned n, enum demo_msg_type want, int timeout_ms)
{
	for (unsigned i = 0; i < n; i++) {
		char who[32];
		struct demo_msg m;
		int rc;

		snprintf(who, sizeof(who), "client %u", i + 1);
		rc = kid_msg(i, who, &m, timeout_ms);
		if (rc)
			return rc;
		if (m.type != (uint32_t)want || m.len)
			return fm_err(-EPROTO, "%s: unexpected message %u", who, m.type);
	}
	return 0;
}

/* ---------------------------------------------------------------- run */

static void problem(struct demo_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct demo_report *r, const char *fmt, ...)
{
	size_t n = strlen(r->problems);
	va_list ap;

	if (n && n < sizeof(r->problems) - 2) {
		strcat(r->problems, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(r->problems + n, sizeof(r->problems) - n, fmt, ap);
	va_end(ap);
}

static double ms_since(uint64_t t0)
{
	return (double)(demo_now_ns() - t0) / 1e6;
}

/* one line of `status` starting with `key` */
static void status_line(const char *status, const char *key, char *out, size_t cap)
{
	for (const char *p = status; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, key, strlen(key))) {
			size_t n = strcspn(p, "\n");

			snprintf(out, cap, "%.*s", (int)n, p);
			return;
		}
	}
	out[0] = 0;
}

/* the text between `a` and the next `b` in `line` (empty if either is
 * missing): persist modes hold spaces ("pmem (flush+drain)") */
static void field_str(const char *line, const char *a, const char *b, char *out, size_t cap)
{
	const char *p = strstr(line, a), *e;

	out[0] = 0;
	if (!p)
		return;
	p += strlen(a);
	e = b ? strstr(p, b) : NULL;
	snprintf(out, cap, "%.*s", (int)(e ? (size_t)(e - p) : strcspn(p, " ")), p);
}

/* what the owner says it runs on: transport, device, pool persistence */
static void owner_setup(const char *status, struct demo_report *r)
{
	char line[512];

	status_line(status, "listen ", line, sizeof(line));
	field_str(line, " transport ", " ", r->transport, sizeof(r->transport));
	field_str(line, " device ", NULL, r->device, sizeof(r->device));
	status_line(status, "store ", line, sizeof(line));
	field_str(line, " persist ", " view ", r->persist, sizeof(r->persist));
	field_str(line, " view ", " ", r->view, sizeof(r->view));
}

static uint64_t field_u64(const char *s, const char *key)
{
	const char *p = strstr(s, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* phase 2's results of every client: the result, samples and log */
static int collect(struct demo_cfg *cfg, struct demo_report *r, struct demo_twrite **logs,
		   uint64_t *nlogs)
{
	int timeout = (int)(cfg->seconds + 60) * 1000;

	for (unsigned c = 0; c < cfg->clients; c++) {
		struct demo_result *x = &r->res[c];
		uint64_t *s;
		char who[32];
		struct demo_msg m;
		int rc;

		snprintf(who, sizeof(who), "client %u", c + 1);
		rc = kid_msg(c, who, &m, timeout);
		if (rc)
			return rc;
		if (m.type != DEMO_MSG_RESULT || m.len != sizeof(*x))
			return fm_err(-EPROTO, "%s: unexpected message %u", who, m.type);
		rc = demo_read_all(g_kids[c].from, x, sizeof(*x), 10000);
		if (rc)
			return fm_err(rc, "%s: result: %s", who, strerror(-rc));
		s = realloc(r->samples, (r->nsamples + x->nsamples + 1) * sizeof(*s));
		if (!s)
			return fm_err(-ENOMEM, "out of memory");
		r->samples = s;
		rc = demo_read_all(g_kids[c].from, s + r->nsamples, x->nsamples * sizeof(*s),
				   10000);
		r->nsamples += x->nsamples;
		r->seen_samples += x->seen_samples;
		for (unsigned t = 0; !rc && t < cfg->threads; t++) {
			unsigned slot = c * cfg->threads + t;

			logs[slot] = malloc((x->nlog[t] + 1) * sizeof(**logs));
			if (!logs[slot])
				return fm_err(-ENOMEM, "out of memory");
			nlogs[slot] = x->nlog[t];
			r->twrites += x->nlog[t];
			rc = demo_read_all(g_kids[c].from, logs[slot],
					   x->nlog[t] * sizeof(**logs), 10000);
		}
		if (rc)
			return fm_err(rc, "%s: samples or log: %s", who, strerror(-rc));
	}
	return 0;
}

static int verify(struct demo_cfg *cfg, struct demo_report *r)
{
	struct child *k = &g_kids[g_nkids];
	struct demo_msg m;
	int rc;

	rc = child_start(cfg, k, -1);
	if (rc)
		return rc;
	g_nkids++;
	rc = kid_msg(g_nkids - 1, "the verifier", &m, 120000);
	if (!rc && (m.type != DEMO_MSG_VERIFY || m.len != sizeof(r->ver)))
		rc = fm_err(-EPROTO, "the verifier: unexpected message %u", m.type);
	if (!rc)
		rc = demo_read_all(k->from, &r->ver, sizeof(r->ver), 10000);
	r->verifier_exit = child_wait(k, 20000);
	if (!rc)
		r->verified = true;
	return rc;
}

static void verdict(struct demo_cfg *cfg, struct demo_report *r)
{
	uint64_t errors = 0, violations = 0;
	const char *first = "";

	for (unsigned c = 0; c < r->nclients; c++) {
		errors += r->res[c].errors;
		violations += r->res[c].violations;
		if (!first[0] && r->res[c].first_violation[0])
			first = r->res[c].first_violation;
		if (r->res[c].first_error[0])
			problem(r, "%s", r->res[c].first_error);
	}
	if (r->verified && r->ver.status)
		problem(r, "verifier: %s", r->ver.what);
	r->ok = r->verified && !r->ver.status && r->ver.bytes == cfg->size &&
		!r->ver.mismatched_bytes && !violations;
	if (r->ok)
		snprintf(r->verdict, sizeof(r->verdict), "invariant: OK (target == source at "
			 "trigger + target writes, %" PRIu64 " bytes compared)", r->ver.bytes);
	else if (errors || !r->verified || r->ver.status)
		snprintf(r->verdict, sizeof(r->verdict), "invariant: UNKNOWN (%" PRIu64 " I/Os "
			 "failed%s; %" PRIu64 " target bytes differ, %" PRIu64 " in-line "
			 "violations)", errors, r->verified ? "" : ", the verifier did not finish",
			 r->ver.mismatched_bytes, violations);
	else
		snprintf(r->verdict, sizeof(r->verdict), "invariant: VIOLATED (%" PRIu64 " of %"
			 PRIu64 " target bytes differ from source at trigger + target writes, "
			 "%" PRIu64 " in-line read violations; first: %s)",
			 r->ver.mismatched_bytes, r->ver.bytes, violations,
			 r->ver.mismatched_bytes ? r->ver.what : first);
}

static int run(struct demo_cfg *cfg, struct demo_run *runp, struct demo_report *r)
{
	unsigned slots = demo_slots(cfg);
	struct demo_twrite **logs = calloc(slots, sizeof(*logs));
	uint64_t *nlogs = calloc(slots, sizeof(*nlogs));
	uint64_t t0 = demo_now_ns(), t;
	char *out = malloc(FM_CTL_ANSWER_MAX);
	char why[DEMO_MSG_MAX];
	struct demo_cpu cpu0, cpu1;
	struct statvfs vfs;
	int rc;

	if (!logs || !nlogs || !out) {
		rc = fm_err(-ENOMEM, "out of memory");
		goto out;
	}
	if (statvfs(cfg->dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < 4 * cfg->size + 64 * MiB) {
		rc = fm_err(-ENOSPC, "%s: %" PRIu64 " MiB free, the run needs %" PRIu64
			    " MiB (source, target, golden and expected images)", cfg->dir,
			    (uint64_t)vfs.f_bavail * vfs.f_frsize / MiB, (4 * cfg->size) / MiB + 64);
		goto out;
	}
	/* the key and both volumes; the owner makes the pool and the fence
	 * table (it raises the floors, the volumes check them) */
	if ((rc = demo_key_write(runp, cfg)))
		goto out;
	if ((rc = demo_file_new(runp, cfg->src, cfg->size)) ||
	    (rc = demo_file_new(runp, cfg->tgt, cfg->size)))
		goto out;
	printf(DEMO_NAME ": owner + %u client processes x %u threads over %s; run dir %s "
	       "(%s); seed %" PRIu64 "\n", cfg->clients, cfg->threads, cfg->transport, cfg->dir,
	       cfg->keep ? "kept" : "removed at the end; --keep keeps it", cfg->seed);
	if ((rc = demo_owner_start(cfg, runp)))
		goto out;
	r->owner_pid = runp->owner;
	if (demo_ctl(cfg, out, FM_CTL_ANSWER_MAX, "status") == 0)
		owner_setup(out, r);
	r->nrdma = demo_rdma_devices(r->rdma, sizeof(r->rdma));
	rc = demo_ctl(cfg, out, FM_CTL_ANSWER_MAX, "map-create %u %u %u %" PRIu64 " %" PRIu64,
		      DEMO_MAP_ID, DEMO_SRC_VOL, DEMO_TGT_VOL, cfg->size, cfg->grain);
	if (rc) {
		fm_err(rc, "map-create: %s", rc == -EREMOTEIO ? out : fm_errormsg());
		goto out;
	}
	for (unsigned c = 0; c < cfg->clients; c++) {
		if ((rc = child_start(cfg, &g_kids[c], (int)c)))
			goto out;
		g_nkids++;
		r->pids[c] = g_kids[c].pid;
	}
	r->nclients = cfg->clients;
	if ((rc = kids_wait_all(cfg->clients, DEMO_MSG_READY, 30000)))
		goto out;
	r->setup_s = ms_since(t0) / 1e3;
	printf("  setup      owner pid %d up, mapping %u created (%" PRIu64 " MiB, grain %"
	       PRIu64 " KiB), %u clients joined: %.2f s\n", (int)runp->owner, DEMO_MAP_ID,
	       cfg->size / MiB, cfg->grain >> 10, cfg->clients, r->setup_s);
	demo_pool_str(r, why, sizeof(why));
	printf("             pool: %s; ", why);
	demo_transport_str(cfg, r, why, sizeof(why));
	printf("%s\n", why);
	fflush(stdout);

	/* phase 1, then the clients pause */
	t = demo_now_ns();
	kids_cmd(cfg->clients, DEMO_CMD_PHASE1);
	if ((rc = kids_wait_all(cfg->clients, DEMO_MSG_PAUSED, 120000)))
		goto out;
	r->phase1_s = ms_since(t) / 1e3;
	printf("  phase 1    the source written through the engine (mapping idle): %.2f s\n",
	       r->phase1_s);
	fflush(stdout);

	/* the trigger, with every client paused: golden.img is the source now */
	rc = demo_golden(cfg, runp, why, sizeof(why));
	if (rc)
		goto out;
	if (why[0])
		problem(r, "phase 1: %s", why);
	t = demo_now_ns();
	rc = demo_ctl(cfg, out, FM_CTL_ANSWER_MAX, "map-prepare %u", DEMO_MAP_ID);
	if (!rc)
		rc = demo_ctl(cfg, out, FM_CTL_ANSWER_MAX, "map-start %u", DEMO_MAP_ID);
	if (rc) {
		fm_err(rc, "the trigger: %s", rc == -EREMOTEIO ? out : fm_errormsg());
		goto out;
	}
	r->trigger_ms = ms_since(t);
	printf("  trigger    golden.img saved; map-prepare + map-start: %.1f ms\n",
	       r->trigger_ms);
	printf("  phase 2    %u s of random I/O on source and target ...\n", cfg->seconds);
	fflush(stdout);

	/* phase 2, the owner's CPU time over it (unknown -- "-" in the
	 * report -- if /proc will not say: a figure, not the run's verdict) */
	(void)demo_cpu_sample(runp->owner, &cpu0);
	kids_cmd(cfg->clients, DEMO_CMD_GO);
	if ((rc = collect(cfg, r, logs, nlogs)))
		goto out;
	if (cpu0.ok && demo_cpu_sample(runp->owner, &cpu1) == 0)
		demo_cpu_delta(&cpu0, &cpu1, &r->owner_cpu);
	for (unsigned c = 0; c < cfg->clients; c++) {
		r->exit_status[c] = child_wait(&g_kids[c], 20000);
		if (r->exit_status[c])
			problem(r, "client %u exited with status %d", c + 1, r->exit_status[c]);
	}

	/* the whole target, by a fresh client, against golden + the logs */
	rc = demo_expected(cfg, runp, logs, nlogs, slots, why, sizeof(why));
	if (rc == -EBADMSG) {
		problem(r, "%s", why);
		rc = 0;
	} else if (rc) {
		goto out;
	} else {
		printf("  verify     the whole target through the engine by client %u ...\n",
		       cfg->clients + 1);
		fflush(stdout);
		rc = verify(cfg, r);
		if (rc)
			goto out;
		if (r->verifier_exit && !r->ver.mismatched_bytes && !r->ver.status)
			problem(r, "the verifier exited with status %d", r->verifier_exit);
	}

	/* the owner's view, then stop it */
	if (demo_ctl(cfg, out, FM_CTL_ANSWER_MAX, "map-show %u", DEMO_MAP_ID) == 0) {
		r->split = field_u64(out, " split ");
		r->grains = field_u64(out, " grains ");
	}
	if (demo_ctl(cfg, out, FM_CTL_ANSWER_MAX, "status") == 0) {
		status_line(out, "group-commit", r->group_commit, sizeof(r->group_commit));
		status_line(out, "connections", r->sessions, sizeof(r->sessions));
	} else {
		problem(r, "the owner did not answer status: %s", fm_errormsg());
	}
	if (demo_owner_stop(runp))
		problem(r, "%s", fm_errormsg());
	r->owner_exit = runp->owner_exit;
	r->total_s = ms_since(t0) / 1e3;
	rc = 0;
out:
	for (unsigned s = 0; logs && s < slots; s++)
		free(logs[s]);
	free(logs);
	free(nlogs);
	free(out);
	return rc;
}

int main(int argc, char **argv)
{
	struct demo_cfg cfg = {
		.size = 64 * MiB, .grain = 64 << 10, .clients = 2, .threads = 2,
		.seconds = 10, .depth = 4, .direct = FM_REFVOL_DIRECT_TRY,
	};
	struct demo_run runx = { .owner_exit = -1 };
	struct demo_report *r;
	struct sigaction sa = { .sa_handler = on_signal };
	bool json_failed = false;
	int rc, status;

	rc = demo_opts_parse(argc, argv, &cfg);
	if (rc)
		return rc > 0 ? 0 : 2; /* --help, or bad usage */
	if (demo_owner_path(&cfg)) {
		fprintf(stderr, DEMO_NAME ": %s\n", fm_errormsg());
		return 1;
	}
	r = calloc(1, sizeof(*r)); /* after the early exits: nothing to free there */
	if (!r)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = demo_run_dir(&cfg, &runx);
	if (rc) {
		fprintf(stderr, DEMO_NAME ": %s\n", fm_errormsg());
		demo_run_cleanup(&cfg, &runx);
		free(r);
		return 1;
	}
	r->cfg = &cfg;
	r->owner_exit = -1;
	rc = run(&cfg, &runx, r);
	if (rc) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", fm_errormsg());
		kids_kill();
		if (runx.owner > 0 && demo_owner_stop(&runx))
			demo_owner_log_tail(&cfg, 20);
		fprintf(stderr, DEMO_NAME ": %s\n", msg);
		fprintf(stderr, "invariant: UNKNOWN (the run did not finish)\n");
		demo_run_cleanup(&cfg, &runx);
		free(r->samples);
		free(r);
		return 1;
	}
	verdict(&cfg, r);
	demo_report_print(r);
	if (cfg.json_path && demo_report_json(r, cfg.json_path)) {
		fprintf(stderr, DEMO_NAME ": --json %s: %s\n", cfg.json_path, strerror(errno));
		json_failed = true;
	}
	if (r->owner_exit)
		demo_owner_log_tail(&cfg, 20);
	status = r->ok && !r->problems[0] && !json_failed ? 0 : 1;
	demo_run_cleanup(&cfg, &runx);
	free(r->samples);
	free(r);
	return status;
}
