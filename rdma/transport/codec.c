/* codec.c -- the transport's own wire formats (byte tables in
 * transport_priv.h): the message header in front of every message and the
 * connection private data exchanged by the handshake.  Validation in a fixed
 * order, one errno per failure. */
#include <errno.h>
#include <string.h>

#include "flashmeta/le.h"
#include "transport_priv.h"

void fm__tmsg_hdr_encode(const struct fm_tmsg_hdr *h, uint8_t out[FM_TMSG_HDR_SIZE])
{
	fm_put_le16(out + 0, FM_TMSG_MAGIC);
	out[2] = FM_TRANSPORT_WIRE_VERSION;
	out[3] = h->type;
	fm_put_le32(out + 4, h->len);
	fm_put_le16(out + 8, h->credits);
	fm_put_le16(out + 10, h->ctrl_credits);
	fm_put_le32(out + 12, 0);
}

int fm__tmsg_hdr_decode(const uint8_t *in, size_t n, struct fm_tmsg_hdr *h)
{
	if (n < FM_TMSG_HDR_SIZE)
		return fm_err(-EPROTO, "message of %zu bytes is shorter than its header", n);
	if (fm_get_le16(in) != FM_TMSG_MAGIC)
		return fm_err(-EPROTO, "message magic 0x%04x", fm_get_le16(in));
	if (in[2] != FM_TRANSPORT_WIRE_VERSION)
		return fm_err(-EPROTONOSUPPORT, "message version %u", in[2]);
	if (in[3] != FM_TMSG_DATA && in[3] != FM_TMSG_CREDIT)
		return fm_err(-EPROTO, "message type %u", in[3]);
	if (fm_get_le32(in + 12) != 0)
		return fm_err(-EPROTO, "message reserved bytes not zero");
	h->type = in[3];
	h->len = fm_get_le32(in + 4);
	h->credits = fm_get_le16(in + 8);
	h->ctrl_credits = fm_get_le16(in + 10);
	if (h->len != n - FM_TMSG_HDR_SIZE)
		return fm_err(-EMSGSIZE, "message says %u bytes, carries %zu", h->len,
			      n - FM_TMSG_HDR_SIZE);
	return 0;
}

void fm__conn_priv_encode(const struct fm_conn_priv *p, uint8_t out[FM_CONN_PRIV_SIZE])
{
	memset(out, 0, FM_CONN_PRIV_SIZE);
	fm_put_le16(out + 0, FM_CONN_MAGIC);
	out[2] = FM_TRANSPORT_WIRE_VERSION;
	out[3] = p->hello_len;
	fm_put_le16(out + 4, p->credits);
	fm_put_le16(out + 6, p->ctrl_credits);
	fm_put_le32(out + 8, p->msg_size);
	memcpy(out + 16, p->hello, p->hello_len);
}

int fm__conn_priv_decode(const uint8_t *in, size_t n, struct fm_conn_priv *p)
{
	if (in == NULL || n < FM_CONN_PRIV_SIZE)
		return fm_err(-EPROTO, "connection private data of %zu bytes", in ? n : 0);
	if (fm_get_le16(in) != FM_CONN_MAGIC)
		return fm_err(-EPROTO, "connection magic 0x%04x", fm_get_le16(in));
	if (in[2] != FM_TRANSPORT_WIRE_VERSION)
		return fm_err(-EPROTONOSUPPORT, "connection version %u", in[2]);
	if (in[3] > FM_HELLO_MAX)
		return fm_err(-EPROTO, "hello of %u bytes", in[3]);
	if (fm_get_le32(in + 12) != 0)
		return fm_err(-EPROTO, "connection reserved bytes not zero");
	memset(p, 0, sizeof(*p));
	p->hello_len = in[3];
	p->credits = fm_get_le16(in + 4);
	p->ctrl_credits = fm_get_le16(in + 6);
	p->msg_size = fm_get_le32(in + 8);
	if (p->credits < 2 || p->ctrl_credits < 1 || p->msg_size == 0)
		return fm_err(-EPROTO, "peer offers %u credits, %u control, %u-byte messages",
			      p->credits, p->ctrl_credits, p->msg_size);
	if (p->credits > FM_CREDITS_MAX)
		return fm_err(-EPROTO, "peer asks for %u receive credits (at most %u)", p->credits,
			      FM_CREDITS_MAX);
	if (p->ctrl_credits > FM_CTRL_CREDITS_MAX)
		return fm_err(-EPROTO, "peer asks for %u control credits (at most %u)",
			      p->ctrl_credits, FM_CTRL_CREDITS_MAX);
	if (p->msg_size > FM_MSG_SIZE_MAX)
		return fm_err(-EPROTO, "peer asks for %u-byte messages (at most %u)", p->msg_size,
			      FM_MSG_SIZE_MAX);
	memcpy(p->hello, in + 16, p->hello_len);
	return 0;
}

void fm__conn_priv_local(const struct fm_transport *t, const void *hello, size_t hello_len,
			 struct fm_conn_priv *p)
{
	memset(p, 0, sizeof(*p));
	p->credits = t->cfg.credits;
	p->ctrl_credits = FM_CTRL_CREDITS;
	p->msg_size = t->cfg.msg_size;
	p->hello_len = (uint8_t)hello_len;
	if (hello_len)
		memcpy(p->hello, hello, hello_len);
}
