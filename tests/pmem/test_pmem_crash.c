/* test_pmem_crash.c -- SIGKILL a child running a storm of split commits and
 * transitions at random points; reopen and check the model (crash_model.h).
 *
 *   test_pmem_crash [--iterations N] [--seed S] [--max-delay-us U]
 *
 * The child appends intents/acks to a MAP_SHARED anonymous log that
 * survives its death; an ack is written only after the call returned.
 * The same pool is carried across iterations, so kills also land inside
 * recovery of the previous kill.  Each child begins an owner incarnation
 * first, as the owner daemon does, so kills also land inside owner record
 * updates (crash_model.h checks the record is the old or the new one).
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "crash_model.h"

#define LOG_CAP (1u << 20)

struct shared_log {
	uint64_t n; /* records published (release) */
	struct cm_rec rec[LOG_CAP];
};

static void emit_shared(void *arg, const struct cm_rec *r)
{
	struct shared_log *l = arg;
	uint64_t n = __atomic_load_n(&l->n, __ATOMIC_RELAXED);

	if (n >= LOG_CAP)
		exit(0); /* long enough: stop cleanly */
	l->rec[n] = *r;
	__atomic_store_n(&l->n, n + 1, __ATOMIC_RELEASE);
}

static void child(const char *path, struct shared_log *l, uint64_t seed)
{
	struct fm_store *s;
	uint64_t rng = seed;
	int ret = fm_store_open(&s, path, NULL);

	if (ret)
		cm_die("open", ret);
	for (;;)
		cm_step(s, &rng, emit_shared, l);
}

int main(int argc, char **argv)
{
	unsigned long iters = 1000, max_delay = 3000;
	uint64_t seed = (uint64_t)time(NULL);
	char path[600], why[256];
	struct shared_log *l;
	struct cm c;
	unsigned long kills_mid_op = 0, kills_mid_owner = 0, kills_mid_commit = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
			iters = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--max-delay-us") && i + 1 < argc)
			max_delay = strtoul(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: %s [--iterations N] [--seed S]"
				" [--max-delay-us U]\n", argv[0]);
			return 2;
		}
	}
	if (getenv("FM_CRASH_ITERS"))
		iters = strtoul(getenv("FM_CRASH_ITERS"), NULL, 0);
	printf("seed %" PRIu64 " iterations %lu dir %s\n", seed, iters, fmt_dir());

	l = mmap(NULL, sizeof(*l), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (l == MAP_FAILED || cm_create(fmt_path(path, sizeof(path), "crash"))) {
		fprintf(stderr, "setup: %s\n", fm_errormsg());
		return 1;
	}
	memset(&c, 0, sizeof(c));
	cm_adopt(&c, path);

	uint64_t rng = seed;
	for (unsigned long it = 0; it < iters; it++) {
		int status;
		pid_t pid;
		struct timespec ts;

		__atomic_store_n(&l->n, 0, __ATOMIC_RELAXED);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			child(path, l, fmt_rand(&rng) | 1);
		/* let it run 0..max_delay us (open included), then kill */
		uint64_t d = fmt_rand(&rng) % (max_delay + 1);
		ts.tv_sec = (time_t)(d / 1000000);
		ts.tv_nsec = (long)(d % 1000000) * 1000;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			fprintf(stderr, "iteration %lu: child failed (status 0x%x)\n",
				it, status);
			return 1;
		}
		uint64_t n = __atomic_load_n(&l->n, __ATOMIC_ACQUIRE);
		for (uint64_t k = 0; k < n; k++)
			cm_feed(&c, &l->rec[k]);
		if (n && (l->rec[n - 1].type == CM_INTENT_TR ||
			  l->rec[n - 1].type == CM_INTENT_SPLIT ||
			  l->rec[n - 1].type == CM_INTENT_OWNER))
			kills_mid_op++;
		if (n && l->rec[n - 1].type == CM_INTENT_OWNER)
			kills_mid_owner++;
		/* between a commit's swap and its ack (maybe with splits
		 * beside it): only bits nobody was told about may be lost */
		for (uint64_t k = n; k-- > 0;) {
			if (l->rec[k].type == CM_ACK_COMMIT)
				break;
			if (l->rec[k].type == CM_COMMIT_BEGIN) {
				kills_mid_commit++;
				break;
			}
		}
		if (cm_verify(&c, path, why, sizeof(why))) {
			fprintf(stderr, "iteration %lu (seed %" PRIu64 "): %s\n",
				it, seed, why);
			return 1;
		}
		cm_adopt(&c, path);
	}
	printf("ok: %lu kills, %lu inside an operation (%lu inside an owner record"
	       " update, %lu inside a split commit)\n", iters, kills_mid_op,
	       kills_mid_owner, kills_mid_commit);
	unlink(path);
	return 0;
}
