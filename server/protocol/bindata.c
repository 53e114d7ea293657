/* SPDX-License-Identifier: MIT */
/* Binary (non-JSON) publication data meeting a JSON-encoded client: the
 * JSON protocol cannot represent it, so the client is closed with 3506
 * (inappropriate protocol), as Centrifugo does, with a log line and a
 * metric. */
#include "protocol/client_impl.h"
#include "metrics/metrics.h"

#include "hf/conn.h"
#include "hf/loop.h"

void cl__binary_for_json(cl_client *cl, const char *what, const char *ch, size_t len) {
  if (cl->state != CS_CONNECTED)
    return;
  MET_INC(MET_BINARY_JSON_CLOSES);
  srv_logline l;
  cl__log_begin(cl, LOG_WARN, "binary_data_for_json_client", &l);
  srv_log_str(&l, "what", what);
  if (ch)
    srv_log_strn(&l, "channel", ch, len);
  srv_log_end(&l);
  /* only the connection: this may run inside a hub sweep, which must not
   * see its subscriber tables change; the subscriptions go when the
   * connection does (as for a slow consumer) */
  cl__flush_replies(cl); /* replies before the close frame, in order */
  cl->state = CS_CLOSED; /* nothing more for it, and said once */
  hf_conn_set_timer(cl->conn, 0);
  hf_conn_close(cl->conn, 3506, "inappropriate protocol: binary data for a JSON client");
}
