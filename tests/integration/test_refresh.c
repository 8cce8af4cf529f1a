/* test_refresh.c -- map-refresh end to end: the real owner, clients with
 * the library's engine and copier on reference file volumes S (source) and
 * T (target), checked block by block against a model.
 *
 * Usage: test_refresh SCENARIO --owner PATH [--provider shm|verbs --addr A]
 *
 *   incremental  A: random S and T; trigger.  B: a slow background copy
 *                to about a quarter, the copier stopped, random I/O on
 *                both volumes (reads of T checked against S at the
 *                trigger plus T's writes), the split bitmap read (bm0).  R1:
 *                map-refresh from copying: it must keep exactly the grains
 *                of bm0 nobody wrote since the trigger ("kept", "dropped"
 *                and the bitmap the client reads afterwards), and T must
 *                read as S at R1 from then on.  C: I/O, the copy to the
 *                end (idle_or_copied).  R2: a few more source writes, then
 *                map-refresh from idle_or_copied: kept = every grain but
 *                the ones written since R1 -- only those are copied
 *                again.  End:
 *                the copy to the end; both files block by block.
 *   client-kill  a second client process writes both volumes and is
 *                SIGKILLed without releasing: the owner marks the changed
 *                set unknown, the refresh recopies everything (full 1,
 *                kept 0), and T ends up as S at the refresh.
 *   owner-restart  a client writes, copies a little and leaves (its
 *                reports go before its BYE): map-show counts its grains as
 *                changed.  The owner is SIGKILLed and restarted: the count
 *                survives; the set is marked unknown all the same (the
 *                new owner cannot know what its predecessor's sessions did
 *                not report: rdma/owner/loop.c), so the refresh is full.
 *   malformed    raw 2.4 clients (forked: an owner may fence them with
 *                kill) send CHANGE_REPORTs the owner must refuse, each
 *                with an ERROR naming the report's seq and nothing
 *                recorded: a map it does not serve (ENOENT), an old or a
 *                future generation (ESTALE); a good one is recorded, and
 *                the BYE{QUIESCED} after them leaves no changed-unknown
 *                mark.  A report of grains beyond the map (ERANGE) is
 *                refused too, but that client's BYE is not believed: the
 *                set is marked unknown.  A report the wire refuses (a
 *                range count beyond the payload) ends the session (BYE
 *                malformed, EBADMSG) and marks the set unknown; so does
 *                a client of wire 2.3 (it never reports) that held it.
 * Exit 0 = pass.  Checked to fail: see the commit that added it.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/engine.h"
#include "flashmeta/error.h"
#include "flashmeta/transport.h"
#include "flashmeta/wire.h"
#include "svc_vols.h"

#define MAP 1
#define GRAIN 4096u
#define GRAINS 256u
#define VOL ((uint64_t)GRAIN * GRAINS)
#define RATE_SLOW 15u  /* 256 KiB/s: 64 grains a second */
#define RATE_FAST 120u

static struct svc s;

/* map-show of MAP: `key`'s value as text, or its number (svc_util.h) */
static int show(const char *key, char *val, size_t cap)
{
	return svc_map_show(&s, MAP, key, val, cap);
}

static long show_num(const char *key)
{
	return svc_map_show_num(&s, MAP, key);
}

/* ------------------------------------------------------------ helpers */

/* `key`'s number in a control answer (-1: not there) */
static long ans_num(const char *out, const char *key)
{
	char want[64];
	const char *p;

	snprintf(want, sizeof(want), " %s ", key);
	p = strstr(out, want);
	return p ? strtol(p + strlen(want), NULL, 10) : -1;
}

/* until map-show says `key` is `want`, up to ms */
static int wait_show(const char *key, const char *want, uint64_t ms)
{
	uint64_t end = mono_ms() + ms;
	char v[64];

	while (mono_ms() < end) {
		if (!show(key, v, sizeof(v)) && !strcmp(v, want))
			return 0;
		usleep(10000);
	}
	return -1;
}

/* map-refresh, again while the owner is in its restart grace (EAGAIN) */
static int refresh(char *out, size_t cap)
{
	uint64_t end = mono_ms() + 10000;
	int rc;

	while ((rc = svc_ctl(&s, out, cap, "map-refresh %d", MAP)) && strstr(out, "EAGAIN") &&
	       mono_ms() < end)
		usleep(50000);
	fprintf(stderr, "map-refresh: %s", out);
	return rc;
}

/* the owner's published split bitmap, as the client reads it, one byte a
 * grain (inside a bracket: the generation cannot move under the read) */
static int read_split(struct fm_agent *a, uint8_t *split)
{
	uint64_t bm[GRAINS / 64];
	struct fm_agent_io io;
	int rc = -1;

	for (int tries = 0; rc && tries < 100; tries++) {
		if (fm_agent_io_begin(a, MAP, &io))
			continue;
		rc = fm_agent_read_bitmap(a, MAP, 0, bm, sizeof(bm));
		fm_agent_io_end(a, &io);
		if (rc)
			usleep(20000);
	}
	for (unsigned g = 0; !rc && g < GRAINS; g++)
		split[g] = (uint8_t)(bm[g / 64] >> (g % 64) & 1);
	return rc;
}

/* one client: agent, both volumes, an engine with the copier ready */
struct cl {
	struct fm_agent *a;
	struct svc_vols v;
	bool copying;
};

static int cl_open(struct cl *c, uint32_t id)
{
	memset(c, 0, sizeof(*c));
	c->a = svc_agent(&s, id, NULL);
	CHECK(fm_agent_wait_active(c->a, 8000) == 0);
	CHECK(svc_vols_open(&s, c->a, id, MAP, VOL, &c->v) == 0);
	return 0;
}

static int cl_copy(struct cl *c, bool on)
{
	struct fm_engine_copy_cfg cc = { .batch_grains = 16, .piece_grains = 4 };

	if (on == c->copying)
		return 0;
	c->copying = on;
	return on ? fm_engine_copy_start(c->v.e, &cc) : fm_engine_copy_stop(c->v.e);
}

/* the engine and agent go; the agent leaves (reports, BYE{QUIESCED}) */
static void cl_close(struct cl *c)
{
	if (c->v.e)
		(void)cl_copy(c, false);
	svc_vols_close(&c->v);
	fm_agent_delete(&c->a);
}

/*
 * n random I/Os of c: writes of either volume (kept in smodel / tmodel,
 * their grains marked in written[] when it is not NULL), reads of S
 * checked against smodel and of T against tmodel.  src_only: no target
 * writes.  Returns the wrong reads.
 */
static int io_round(struct cl *c, int n, uint64_t *x, uint8_t *smodel, uint8_t *tmodel,
		    uint8_t *written, bool src_only)
{
	uint8_t buf[GRAIN];
	int bad = 0;

	for (int i = 0; i < n; i++) {
		uint64_t r = rnd(x) % 100, g = rnd(x) % GRAINS, sec = rnd(x) % (GRAIN / 512);
		uint64_t off = g * GRAIN + sec * 512, len = (1 + rnd(x) % (GRAIN / 512 - sec)) * 512;
		bool src = src_only || rnd(x) % 2;
		uint8_t *model = src ? smodel : tmodel;
		int rc;

		if (r < 40) {
			svc_fill(buf, len, x);
			rc = fm_engine_rw(c->v.e, MAP, src ? FM_IO_WRITE_SOURCE : FM_IO_WRITE_TARGET,
					  off, len, buf, NULL);
			if (rc)
				DIE("%s write: %s", src ? "S" : "T", fm_errormsg());
			memcpy(model + off, buf, len);
			if (written)
				written[g] = 1;
		} else {
			rc = fm_engine_rw(c->v.e, MAP, src ? FM_IO_READ_SOURCE : FM_IO_READ_TARGET, off,
					  len, buf, NULL);
			if (rc)
				DIE("%s read: %s", src ? "S" : "T", fm_errormsg());
			if (memcmp(buf, model + off, len)) {
				fprintf(stderr, "read of %s grain %" PRIu64 " is wrong\n",
					src ? "S" : "T", g);
				bad++;
			}
		}
	}
	return bad;
}

/* the two files against the models, block by block: blocks that differ */
static int check_files(const uint8_t *smodel, const uint8_t *tmodel)
{
	const char *name[2] = { "src.img", "tgt.img" };
	const uint8_t *model[2] = { smodel, tmodel };
	int diff = 0;

	for (int v = 0; v < 2; v++) {
		uint8_t *got = svc_file_load(&s, name[v], VOL);

		for (uint64_t g = 0; g < GRAINS; g++)
			for (uint64_t b = 0; b < GRAIN / 512; b++)
				if (memcmp(got + g * GRAIN + b * 512, model[v] + g * GRAIN + b * 512,
					   512)) {
					if (diff < 10)
						fprintf(stderr, "%s grain %" PRIu64 " block %" PRIu64
							" differs from the model\n", name[v], g, b);
					diff++;
				}
		free(got);
	}
	return diff;
}

/* the copy to the end at the fast rate, `ios` I/Os beside it per look
 * (their grains marked in written[], if not NULL); 0 when idle_or_copied
 * with every grain split */
static int copy_to_end(struct cl *c, uint64_t *x, uint8_t *smodel, uint8_t *tmodel,
		       uint8_t *written, int ios, int *bad)
{
	uint64_t t0 = mono_ms();
	char out[4096], v[64] = "";

	CHECK(cl_copy(c, true) == 0);
	CHECK(svc_ctl(&s, out, sizeof(out), "map-rate %d %u", MAP, RATE_FAST) == 0);
	while (mono_ms() - t0 < 30000) {
		if (!show("state", v, sizeof(v)) && !strcmp(v, "idle_or_copied"))
			break;
		if (ios)
			*bad += io_round(c, ios, x, smodel, tmodel, written, false);
		else
			usleep(10000);
	}
	CHECK(!strcmp(v, "idle_or_copied"));
	CHECK(show_num("split-pct") == 100);
	return 0;
}

/* the owner, the trigger on random S and T (svc_vols_trigger: *smodel is
 * S, *tmodel T's image), client 1 open and granted generation 1 */
static int start(uint64_t *x, uint8_t **smodel, uint8_t **tmodel, struct cl *c)
{
	svc_owner_start(&s);
	CHECK(svc_vols_trigger(&s, MAP, VOL, GRAIN, x, smodel, tmodel) == 0);
	CHECK(cl_open(c, 1) == 0);
	CHECK(svc_wait_gen(c->a, MAP, 1) == 0);
	return 0;
}

/* the copier at the slow rate until `pct` % of the grains are split (20 s
 * at most), then stopped: some grains copied, the others not */
static int copy_some(struct cl *c, long pct)
{
	char out[4096];
	uint64_t t0;

	CHECK(cl_copy(c, true) == 0);
	CHECK(svc_ctl(&s, out, sizeof(out), "map-rate %d %u", MAP, RATE_SLOW) == 0);
	t0 = mono_ms();
	while (show_num("split-pct") < pct && mono_ms() - t0 < 20000)
		usleep(20000);
	CHECK(svc_ctl(&s, out, sizeof(out), "map-rate %d 0", MAP) == 0);
	CHECK(cl_copy(c, false) == 0);
	return 0;
}

/* the end of a scenario: c closed (it leaves), both files against the
 * models, the models freed; non-zero if a read or a block was wrong */
static int finish(struct cl *c, uint8_t *smodel, uint8_t *tmodel, int bad)
{
	int diff;

	cl_close(c);
	diff = check_files(smodel, tmodel);
	fprintf(stderr, "check: %d wrong reads, %d blocks differ\n", bad, diff);
	free(smodel);
	free(tmodel);
	return bad || diff;
}

static unsigned count(const uint8_t *v)
{
	unsigned n = 0;

	for (unsigned g = 0; g < GRAINS; g++)
		n += v[g] != 0;
	return n;
}

/* -------------------------------------------------------- incremental */

static int sc_incremental(struct svc *sv)
{
	uint64_t x0 = svc_seed("refresh", 4242), *x = &x0;

	(void)sv; /* == &s, the file's */
	uint8_t *smodel, *tmodel, bm0[GRAINS], bm1[GRAINS], written[GRAINS] = { 0 };
	unsigned kept = 0, dropped = 0, nw;
	char out[4096];
	struct cl c;
	int bad = 0;

	CHECK(start(x, &smodel, &tmodel, &c) == 0);

	/* B: a quarter copied (split and not written), writes everywhere */
	CHECK(copy_some(&c, 25) == 0);
	bad += io_round(&c, 150, x, smodel, tmodel, written, false);
	CHECK(read_split(c.a, bm0) == 0);
	for (unsigned g = 0; g < GRAINS; g++) {
		kept += bm0[g] && !written[g];
		dropped += bm0[g] && written[g];
	}
	nw = count(written);
	fprintf(stderr, "B: %u grains split, %u written since the trigger: expect kept %u "
		"dropped %u\n", count(bm0), nw, kept, dropped);
	CHECK(kept > 0 && dropped > 0 && nw < GRAINS); /* every case is there */
	/* nothing released yet: the writes are the client's, not the owner's */
	CHECK(show_num("changed") == 0 && show_num("changed-unknown") == 0);

	/* R1: the refresh from copying */
	CHECK(refresh(out, sizeof(out)) == 0);
	CHECK(ans_num(out, "kept") == kept && ans_num(out, "dropped") == dropped &&
	      ans_num(out, "full") == 0);
	CHECK(strstr(out, " state copying ") && strstr(out, " generation 2 "));
	CHECK(show_num("changed") == 0 && show_num("changed-unknown") == 0); /* a new set */
	CHECK(svc_wait_gen(c.a, MAP, 2) == 0);
	CHECK(read_split(c.a, bm1) == 0);
	for (unsigned g = 0; g < GRAINS; g++)
		if (bm1[g] != (bm0[g] && !written[g])) {
			fprintf(stderr, "grain %u split %u after the refresh: before %u, written "
				"%u\n", g, bm1[g], bm0[g], written[g]);
			bad++;
		}
	memcpy(tmodel, smodel, VOL); /* T is S's image at R1 from here on */

	/* C: I/O, the copy to the end; the writes make the next changed set */
	memset(written, 0, sizeof(written));
	bad += io_round(&c, 60, x, smodel, tmodel, written, false);
	CHECK(copy_to_end(&c, x, smodel, tmodel, written, 0, &bad) == 0);

	/* R2: from idle_or_copied, a few more source writes: only the grains
	 * written since R1 are copied again */
	CHECK(cl_copy(&c, false) == 0);
	bad += io_round(&c, 30, x, smodel, tmodel, written, true);
	nw = count(written);
	fprintf(stderr, "R2: %u grains written since R1\n", nw);
	CHECK(nw > 0 && nw < GRAINS);
	CHECK(refresh(out, sizeof(out)) == 0);
	CHECK(ans_num(out, "kept") == GRAINS - nw && ans_num(out, "dropped") == nw &&
	      ans_num(out, "full") == 0);
	CHECK(strstr(out, " generation 3 "));
	CHECK(show_num("split") == (long)(GRAINS - nw));
	memcpy(tmodel, smodel, VOL);
	CHECK(svc_wait_gen(c.a, MAP, 3) == 0);
	bad += io_round(&c, 100, x, smodel, tmodel, NULL, false);
	CHECK(copy_to_end(&c, x, smodel, tmodel, NULL, 5, &bad) == 0);
	bad += io_round(&c, 50, x, smodel, tmodel, NULL, false);
	return finish(&c, smodel, tmodel, bad);
}

/* -------------------------------------------------------- client-kill */

/* the writer: client 2, its own engine; on 'G' writes both volumes, says
 * 'W', then waits to be killed (it never releases).  Forked before the
 * parent opens its own client: over verbs a child forked from a process
 * with RDMA resources open cannot use the device (libibverbs and fork) */
static int writer(struct svc *sv, int idx, int rfd, int wfd, void *arg)
{
	uint64_t x = *(uint64_t *)arg;
	uint8_t *sm = malloc(VOL), *tm = malloc(VOL);
	struct cl c;

	(void)sv;
	(void)idx;
	if (sig_wait(rfd, 60000) != 'G' || cl_open(&c, 2) || svc_wait_gen(c.a, MAP, 1))
		return 1;
	/* the models are not checked here: the parent reads the files */
	memset(sm, 0, VOL);
	memset(tm, 0, VOL);
	for (int i = 0; i < 60; i++) {
		uint8_t buf[GRAIN];
		uint64_t g = rnd(&x) % GRAINS;

		svc_fill(buf, GRAIN, &x);
		if (fm_engine_rw(c.v.e, MAP, i % 2 ? FM_IO_WRITE_SOURCE : FM_IO_WRITE_TARGET,
				 g * GRAIN, GRAIN, buf, NULL))
			DIE("writer: %s", fm_errormsg());
	}
	sig_send(wfd, 'W');
	pause();
	return 0;
}

static int sc_client_kill(struct svc *sv)
{
	uint64_t x0 = svc_seed("refresh", 4242), *x = &x0;

	(void)sv; /* == &s, the file's */
	uint8_t *smodel, *tmodel, split[GRAINS];
	struct child w;
	char out[4096];
	struct cl c;
	int bad = 0;
	uint64_t seed = rnd(x);

	/* start(), with the writer forked before our own client: see writer */
	svc_owner_start(&s);
	CHECK(svc_vols_trigger(&s, MAP, VOL, GRAIN, x, &smodel, &tmodel) == 0);
	child_start(&s, &w, 0, writer, &seed);
	CHECK(cl_open(&c, 1) == 0);
	CHECK(svc_wait_gen(c.a, MAP, 1) == 0);
	/* some grains copied first, so that a full recopy drops some */
	CHECK(copy_some(&c, 20) == 0);

	sig_send(w.to[1], 'G');
	CHECK(sig_wait(w.from[0], 20000) == 'W');
	kill(w.pid, SIGKILL);
	CHECK(child_wait(&w, 10000) == 128 + SIGKILL);
	/* the owner fences the dead session and marks the set */
	CHECK(wait_show("changed-unknown", "1", 10000) == 0);
	free(smodel);
	smodel = svc_file_load(&s, "src.img", VOL); /* S now: nobody writes it any more */
	CHECK(refresh(out, sizeof(out)) == 0);
	CHECK(ans_num(out, "full") == 1 && ans_num(out, "kept") == 0 &&
	      ans_num(out, "dropped") > 0);
	CHECK(show_num("split") == 0 && show_num("changed-unknown") == 0);
	CHECK(svc_wait_gen(c.a, MAP, 2) == 0);
	CHECK(read_split(c.a, split) == 0 && count(split) == 0);
	memcpy(tmodel, smodel, VOL);
	bad += io_round(&c, 100, x, smodel, tmodel, NULL, false);
	CHECK(copy_to_end(&c, x, smodel, tmodel, NULL, 5, &bad) == 0);
	return finish(&c, smodel, tmodel, bad);
}

/* ------------------------------------------------------ owner-restart */

static int sc_owner_restart(struct svc *sv)
{
	uint64_t x0 = svc_seed("refresh", 4242), *x = &x0;

	(void)sv; /* == &s, the file's */
	uint8_t *smodel, *tmodel, written[GRAINS] = { 0 };
	char out[4096];
	struct cl c;
	int bad = 0;
	unsigned nw;

	CHECK(start(x, &smodel, &tmodel, &c) == 0);
	bad += io_round(&c, 120, x, smodel, tmodel, written, false);
	nw = count(written);
	/* the leave reports every grain, in band, before its BYE; the owner
	 * records them beside its loop: wait for the count */
	cl_close(&c);
	{
		char want[16];

		snprintf(want, sizeof(want), "%u", nw);
		CHECK(wait_show("changed", want, 10000) == 0);
	}
	CHECK(show_num("changed-unknown") == 0);
	fprintf(stderr, "%u grains reported written; owner SIGKILL\n", nw);

	svc_owner_kill(&s, SIGKILL);
	svc_owner_start(&s);
	/* durable: the count survives; what a previous owner's sessions did
	 * not report cannot be known: unknown */
	CHECK(show_num("changed") == nw);
	CHECK(show_num("changed-unknown") == 1);
	CHECK(refresh(out, sizeof(out)) == 0);
	CHECK(ans_num(out, "full") == 1);
	memcpy(tmodel, smodel, VOL);
	CHECK(cl_open(&c, 1) == 0);
	CHECK(svc_wait_gen(c.a, MAP, 2) == 0);
	bad += io_round(&c, 100, x, smodel, tmodel, NULL, false);
	CHECK(copy_to_end(&c, x, smodel, tmodel, NULL, 5, &bad) == 0);
	return finish(&c, smodel, tmodel, bad);
}

/* ---------------------------------------------------------- malformed */

/* A client speaking the wire by hand (wire.h), without the library's
 * state machine: what a buggy or hostile 2.4 client can send. */
struct raw {
	struct fm_transport *t;
	struct fm_ep *ep;
	uint64_t session, seq;
};

static int raw_send(struct raw *r, struct fm_msg *m)
{
	uint8_t buf[FM_WIRE_MAX_MSG];
	int n;

	m->session = m->type == FM_MSG_HELLO ? 0 : r->session;
	m->seq = ++r->seq;
	n = fm_wire_encode(m, buf, sizeof(buf));
	if (n < 0)
		return n;
	return fm_ep_send(r->ep, buf, (size_t)n, 0);
}

/* the next message of `type` (others skipped) within 3 s; 0, -ETIMEDOUT,
 * -ECONNRESET (closed) */
static int raw_recv(struct raw *r, uint16_t type, struct fm_msg *m)
{
	uint8_t in[FM_WIRE_MAX_MSG];
	uint64_t end = mono_ms() + 3000;

	while (mono_ms() < end) {
		int n;

		(void)fm_ep_progress(r->ep);
		while ((n = fm_ep_recv(r->ep, in, sizeof(in), FM_NONBLOCK)) > 0)
			if (!fm_wire_decode(in, (size_t)n, m) && m->type == type)
				return 0;
		if (fm_ep_state(r->ep, NULL) == FM_EP_CLOSED)
			return -ECONNRESET;
		usleep(2000);
	}
	return -ETIMEDOUT;
}

/* HELLO (announcing wire 2.`minor`), AUTH, WELCOME */
static int raw_join_minor(struct raw *r, uint32_t id, uint8_t minor)
{
	struct fm_transport_cfg tcfg = { .provider = s.provider, .op_timeout_ms = 2000 };
	uint8_t nonce[FM_WIRE_NONCE_SIZE];
	const char *key = "flashmeta-test-key"; /* svc_util.c's */
	struct fm_msg m;

	memset(r, 0, sizeof(*r));
	CHECK(fm_transport_new(&r->t, &tcfg) == 0);
	CHECK(fm_connect(r->t, s.addr, NULL, 0, 2000, &r->ep) == 0);
	fm_wire_msg_init(&m, FM_MSG_HELLO);
	m.u.hello.client_id = id;
	m.u.hello.ver_major = FM_WIRE_MAJOR;
	m.u.hello.ver_minor = minor;
	for (unsigned i = 0; i < FM_WIRE_NONCE_SIZE; i++)
		nonce[i] = (uint8_t)(i * 13 + id);
	memcpy(m.u.hello.nonce, nonce, sizeof(nonce));
	CHECK(raw_send(r, &m) == 0);
	CHECK(raw_recv(r, FM_MSG_CHALLENGE, &m) == 0);
	r->session = m.session;
	{
		uint8_t owner_nonce[FM_WIRE_NONCE_SIZE];

		memcpy(owner_nonce, m.u.challenge.nonce, sizeof(owner_nonce));
		fm_wire_msg_init(&m, FM_MSG_AUTH);
		fm_wire_auth_mac(key, strlen(key), id, nonce, owner_nonce, r->session,
				 m.u.auth.mac);
	}
	CHECK(raw_send(r, &m) == 0);
	CHECK(raw_recv(r, FM_MSG_WELCOME, &m) == 0);
	CHECK(m.u.welcome.map_count == 1 && m.u.welcome.maps[0].map_id == MAP);
	return 0;
}

static void raw_close(struct raw *r)
{
	fm_ep_delete(&r->ep);
	fm_transport_delete(&r->t);
}

/* one CHANGE_REPORT of n ranges of 2 grains, 8 apart, from `first` */
static int raw_report(struct raw *r, uint64_t map, uint64_t gen, uint64_t first, unsigned n)
{
	struct fm_msg m;

	fm_wire_msg_init(&m, FM_MSG_CHANGE_REPORT);
	m.u.report.map_id = map;
	m.u.report.generation = gen;
	m.u.report.range_count = (uint16_t)n;
	for (unsigned i = 0; i < n; i++) {
		m.u.report.ranges[i].first = first + 8 * i;
		m.u.report.ranges[i].last = first + 8 * i + 1;
	}
	return raw_send(r, &m);
}

/* Is the report just sent (seq R) refused?  A LEASE_RENEW behind it and
 * its LEASE_GRANT: the owner answers in order, so an ERROR for R comes
 * before the grant or never (and the lease is renewed on the way).
 * Returns the ERROR's code, 0 (accepted), or -1 (no answer). */
static int raw_refused(struct raw *r)
{
	uint8_t in[FM_WIRE_MAX_MSG];
	uint64_t rseq = r->seq, end = mono_ms() + 3000;
	struct fm_msg m;
	int code = 0;

	fm_wire_msg_init(&m, FM_MSG_LEASE_RENEW);
	m.u.renew.renew_id = rseq;
	if (raw_send(r, &m))
		return -1;
	while (mono_ms() < end) {
		int n;

		(void)fm_ep_progress(r->ep);
		while ((n = fm_ep_recv(r->ep, in, sizeof(in), FM_NONBLOCK)) > 0) {
			if (fm_wire_decode(in, (size_t)n, &m))
				continue;
			if (m.type == FM_MSG_ERROR && m.u.error.ref_seq == rseq)
				code = (int)m.u.error.code;
			if (m.type == FM_MSG_LEASE_GRANT)
				return code;
		}
		usleep(1000);
	}
	return -1;
}

static int raw_bye_quiesced(struct raw *r)
{
	struct fm_msg m;

	fm_wire_msg_init(&m, FM_MSG_BYE);
	m.u.bye.reason = FM_BYE_NORMAL;
	m.u.bye.flags = FM_BYE_F_QUIESCED;
	return raw_send(r, &m);
}

/*
 * The raw clients run in children: an owner that ends an ACTIVE session
 * and hears no BYE{QUIESCED} in time fences it with kill -- on shm the
 * process.  Phase 0: refusals ENOENT/ESTALE, a good report, BYE{QUIESCED}.
 * Phase 1: a report beyond the map (ERANGE), BYE{QUIESCED}.  Phase 2: a
 * range count beyond the payload, the owner's BYE, our BYE{QUIESCED}.
 * Phase 3: a client of wire 2.3 joins and leaves with BYE{QUIESCED}.
 */
static int raw_child(struct svc *sv, int idx, int rfd, int wfd, void *arg)
{
	int phase = *(int *)arg;
	struct raw r;

	(void)sv;
	(void)idx;
	(void)rfd;
	(void)wfd;
	if (raw_join_minor(&r, 3 + (uint32_t)phase, phase == 3 ? 3 : FM_WIRE_MINOR))
		return 10;
	if (phase == 3) {
		/* a 2.3 client: it never reports, so its BYE vouches for
		 * nothing (wire.h "Versions") */
	} else if (phase == 0) {
		CHECK(raw_report(&r, 99, 1, 10, 1) == 0);
		CHECK(raw_refused(&r) == ENOENT);
		CHECK(raw_report(&r, MAP, 0, 10, 1) == 0);   /* the generation before */
		CHECK(raw_refused(&r) == ESTALE);
		CHECK(raw_report(&r, MAP, 2, 10, 1) == 0);   /* one that does not exist */
		CHECK(raw_refused(&r) == ESTALE);
		CHECK(raw_report(&r, MAP, 1, GRAINS - 10, 2) == 0); /* [246,247] [254,255] */
		CHECK(raw_refused(&r) == 0);
	} else if (phase == 1) {
		CHECK(raw_report(&r, MAP, 1, GRAINS - 8, 2) == 0);  /* [248,249] [256,257] */
		CHECK(raw_refused(&r) == ERANGE);
	} else {
		uint8_t buf[FM_WIRE_MAX_MSG];
		struct fm_msg m;
		uint32_t crc;
		int n;

		fm_wire_msg_init(&m, FM_MSG_CHANGE_REPORT);
		m.u.report.map_id = MAP;
		m.u.report.generation = 1;
		m.u.report.range_count = 1;
		m.session = r.session;
		m.seq = r.seq + 1; /* not counted: the owner will not take it */
		n = fm_wire_encode(&m, buf, sizeof(buf));
		CHECK(n > 0);
		buf[FM_WIRE_HDR_SIZE + 16] = 0x01; /* range_count 0xff01 */
		buf[FM_WIRE_HDR_SIZE + 17] = 0xff;
		memset(buf + 32, 0, 4);
		crc = fm_crc32c(buf, (size_t)n);
		for (int i = 0; i < 4; i++)
			buf[32 + i] = (uint8_t)(crc >> (8 * i));
		CHECK(fm_ep_send(r.ep, buf, (size_t)n, 0) == 0);
		CHECK(raw_recv(&r, FM_MSG_BYE, &m) == 0);
		CHECK(m.u.bye.reason == FM_BYE_MALFORMED && m.u.bye.code == EBADMSG);
	}
	CHECK(raw_bye_quiesced(&r) == 0);
	usleep(200000); /* the BYE is taken before we close */
	raw_close(&r);
	return 0;
}

static int sc_malformed(struct svc *sv)
{
	uint64_t x0 = svc_seed("refresh", 4242), *x = &x0;

	(void)sv; /* == &s, the file's */
	uint8_t *smodel, *tmodel;
	char out[4096];
	struct child c;
	int phase;

	svc_owner_start(&s);
	CHECK(svc_vols_trigger(&s, MAP, VOL, GRAIN, x, &smodel, &tmodel) == 0);
	phase = 0;
	child_start(&s, &c, 0, raw_child, &phase);
	CHECK(child_wait(&c, 20000) == 0);
	/* only the good report recorded; the BYE vouched for the rest */
	CHECK(wait_show("changed", "4", 10000) == 0);
	CHECK(show_num("changed-unknown") == 0);
	CHECK(svc_ctl(&s, out, sizeof(out), "status") == 0);
	CHECK(strstr(out, "malformed 0 "));
	phase = 1;
	child_start(&s, &c, 1, raw_child, &phase);
	CHECK(child_wait(&c, 20000) == 0);
	/* nothing recorded; but a client that reported grains its map does
	 * not have is not believed to have reported everything */
	CHECK(show_num("changed") == 4);
	CHECK(wait_show("changed-unknown", "1", 10000) == 0);
	/* a new generation (a refresh: full), then the wire's refusal */
	CHECK(refresh(out, sizeof(out)) == 0 && ans_num(out, "full") == 1);
	CHECK(show_num("changed") == 0 && show_num("changed-unknown") == 0);
	phase = 2;
	child_start(&s, &c, 2, raw_child, &phase);
	CHECK(child_wait(&c, 20000) == 0);
	CHECK(wait_show("changed-unknown", "1", 10000) == 0);
	CHECK(show_num("changed") == 0);
	CHECK(svc_ctl(&s, out, sizeof(out), "status") == 0);
	CHECK(strstr(out, "malformed 1 "));
	/* a client before 2.4 held the map: whatever it wrote is unknown */
	CHECK(refresh(out, sizeof(out)) == 0 && ans_num(out, "full") == 1);
	CHECK(show_num("changed-unknown") == 0);
	phase = 3;
	child_start(&s, &c, 3, raw_child, &phase);
	CHECK(child_wait(&c, 20000) == 0);
	CHECK(wait_show("changed-unknown", "1", 10000) == 0);
	free(smodel);
	free(tmodel);
	return 0;
}

/* The scenarios run on the file's s (svc_main is given it: sv == &s). */
int main(int argc, char **argv)
{
	static const struct svc_scenario sc[] = {
		{ "incremental", sc_incremental }, { "client-kill", sc_client_kill },
		{ "owner-restart", sc_owner_restart }, { "malformed", sc_malformed },
	};
	static const struct svc_test t = { .name = "refresh", .sc = sc,
					   .n = sizeof(sc) / sizeof(sc[0]) };

	return svc_main(&t, &s, argc, argv);
}
