-- mqscope: forward EMQX events that capture cannot see (TLS listeners) to mqscope.
-- Republished by the action in rule.json / rule.hocon to mqscope/emqx/events/${event}.
SELECT
  *
FROM
  "$events/client_check_authz_complete",
  "$events/client_check_authn_complete",
  "$events/client_connected",
  "$events/client_disconnected",
  "$events/message_dropped",
  "$events/delivery_dropped"
WHERE
  -- Allowed checks are one per publish/subscribe: only denials are worth the traffic.
  (event = 'client.check_authz_complete' and result = 'deny')
  or event = 'client.check_authn_complete'
  or event = 'client.connected'
  or event = 'client.disconnected'
  -- Never forward the drop of a forwarded event: while mqscope is away its events have
  -- no subscriber, and each drop would make another event (a loop).
  or ((event = 'message.dropped' or event = 'delivery.dropped')
      and substr(topic, 0, 20) != 'mqscope/emqx/events/')
