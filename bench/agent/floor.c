/* floor.c -- fm-bench-agent's floor (bench/common/floor.h): one
 * connection and one lane per wait mode, on the main thread; a failure
 * ends the run. */
#include "bench_agent.h"

static struct fm_floor_cfg floor_cfg(const struct ba_opts *op, enum fm_wait_mode mode)
{
	return (struct fm_floor_cfg){ .provider = op->provider, .device = op->device,
				      .addr = op->floor_addr, .wait = mode, .lanes = 1 };
}

pid_t floor_server_start(const struct ba_opts *op, unsigned nconn)
{
	struct fm_floor_cfg cfg = floor_cfg(op, FM_WAIT_EVENT);
	pid_t pid;
	int rc = fm_floor_server_start(&cfg, nconn, &pid);

	if (rc)
		ba_die(rc, "floor server on %s", op->floor_addr);
	return pid;
}

void floor_open(struct floor *f, const struct ba_opts *op, enum fm_wait_mode mode,
		const char *label)
{
	struct fm_floor_cfg cfg = floor_cfg(op, mode);
	int rc;

	f->label = label;
	if ((rc = fm_floor_open(&f->f, &cfg)))
		ba_die(rc, "floor client (%s) to %s", label, op->floor_addr);
	if ((rc = fm_floor_lane_open(&f->f, 0, &f->l)))
		ba_die(rc, "floor lane (%s)", label);
}

void floor_close(struct floor *f)
{
	fm_floor_lane_close(&f->l);
	fm_floor_close(&f->f);
}

static double ok(const struct floor *f, int rc, double ns, const char *what)
{
	if (rc)
		ba_die(rc, "floor (%s): %s", f->label, what);
	return ns;
}

double floor_read64(struct floor *f)
{
	double ns;
	int rc = fm_floor_read64(&f->l, &ns);

	return ok(f, rc, ns, "READ");
}

double floor_cas(struct floor *f)
{
	double ns;
	int rc = fm_floor_cas(&f->l, &ns);

	return ok(f, rc, ns, "CAS");
}

double floor_cas2(struct floor *f)
{
	double ns;
	int rc = fm_floor_cas2(&f->l, &ns);

	return ok(f, rc, ns, "2 CAS");
}

double floor_casread(struct floor *f)
{
	double ns;
	int rc = fm_floor_casread(&f->l, &ns);

	return ok(f, rc, ns, "CAS+READ");
}

double floor_casread_cas(struct floor *f)
{
	double ns;
	int rc = fm_floor_casread_cas(&f->l, &ns);

	return ok(f, rc, ns, "CAS+READ, CAS");
}

double floor_msg_rtt(struct floor *f)
{
	double ns;
	int rc = fm_floor_msg_rtt(&f->f, &ns);

	return ok(f, rc, ns, "message round trip");
}
