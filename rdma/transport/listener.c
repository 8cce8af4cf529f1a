/* listener.c -- connection setup entry points: listen, accept, the owner's
 * loopback endpoint, and fm_connect (with our connection private data). */
#include <errno.h>

#include "transport_priv.h"

int fm_listen(struct fm_transport *t, const char *addr, struct fm_listener **out)
{
	if (t == NULL || addr == NULL || out == NULL)
		return fm_err(-EINVAL, "fm_listen: NULL argument");
	*out = NULL;
	return t->ops->listen(t, addr, out);
}

void fm_listener_delete(struct fm_listener **lp)
{
	if (lp == NULL || *lp == NULL)
		return;
	(*lp)->t->ops->listener_delete(*lp);
	*lp = NULL;
}

int fm_listener_fd(const struct fm_listener *l)
{
	return l->t->ops->listener_fd(l);
}

int fm_listener_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out)
{
	if (l == NULL || out == NULL)
		return fm_err(-EINVAL, "fm_listener_accept: NULL argument");
	*out = NULL;
	return l->t->ops->accept(l, timeout_ms, out);
}

int fm_listener_loopback(struct fm_listener *l, struct fm_ep **out)
{
	int ret;

	if (l == NULL || out == NULL)
		return fm_err(-EINVAL, "fm_listener_loopback: NULL argument");
	*out = NULL;
	ret = l->t->ops->loopback(l, out);
	if (ret == 0)
		(*out)->loopback = true;
	return ret;
}

int fm_connect(struct fm_transport *t, const char *addr, const void *hello, size_t hello_len,
	       int timeout_ms, struct fm_ep **out)
{
	struct fm_conn_priv priv;

	if (t == NULL || addr == NULL || out == NULL || (hello == NULL && hello_len))
		return fm_err(-EINVAL, "fm_connect: NULL argument");
	*out = NULL;
	if (hello_len > FM_HELLO_MAX)
		return fm_err(-EMSGSIZE, "hello of %zu bytes (max %d)", hello_len, FM_HELLO_MAX);
	if (timeout_ms < 0)
		timeout_ms = t->cfg.op_timeout_ms;
	fm__conn_priv_local(t, hello, hello_len, &priv);
	return t->ops->connect(t, addr, &priv, timeout_ms, out);
}
