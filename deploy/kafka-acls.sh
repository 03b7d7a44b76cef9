#!/bin/sh
# The Kafka ACLs of the suite: one principal per service, each writing only the topics it owns
# (docs/operations.md, "Who may write each topic"). With the brokers' authorizer on and
# allow.everyone.if.no.acl.found=false, a principal not named here can do nothing.
#
# The two topics written from outside a service are doors: billing.ledger.commands is written by
# the ledger alone (its HTTP API takes every transfer, bonus redemption and payment-type change,
# with who asked taken from the caller's token); billing.payments by the payment channels'
# gateway, the operators' CLI (`billing do pay`) and the ledger (which refills the payments it
# keeps into a broker that lost them).
#
# Run it once per cluster, and again after a topic is added, as a super user with a broker's
# tools (the Compose overlay's `kafka-acls` job does):
#
#   KAFKA_BOOTSTRAP=kafka-1:19092 KAFKA_ADMIN_CONFIG=/tmp/super.properties deploy/kafka-acls.sh
#
# Adding an ACL that exists changes nothing, so a second run is harmless.
set -eu

bootstrap=${KAFKA_BOOTSTRAP:?the brokers, host:port}
config=${KAFKA_ADMIN_CONFIG:?a client configuration of a super user}
prefix=${BILLING_KAFKA__TOPIC_PREFIX:-}
kafka_acls=${KAFKA_ACLS:-/opt/kafka/bin/kafka-acls.sh}

allow() {
  principal=$1
  shift
  "$kafka_acls" --bootstrap-server "$bootstrap" --command-config "$config" --add \
    --allow-principal "User:$principal" "$@"
}

# writes PRINCIPAL TOPIC...: produce to each topic.
writes() {
  principal=$1
  shift
  for topic in "$@"; do
    allow "$principal" --operation Write --operation Describe --topic "$prefix$topic"
  done
}

# reads PRINCIPAL GROUP TOPIC...: consume each topic as the consumer group GROUP.
reads() {
  principal=$1
  group=$2
  shift 2
  allow "$principal" --operation Read --group "$prefix$group"
  for topic in "$@"; do
    allow "$principal" --operation Read --operation Describe --topic "$prefix$topic"
  done
}

# Each service writes its own topics and its dead-letter topic, and reads what it consumes.
writes identity billing.identity billing.identity.dlq
reads identity identity billing.ledger
writes ledger billing.ledger billing.ledger.seals billing.ledger.dlq billing.replay
writes ledger billing.ledger.commands billing.payments
reads ledger ledger billing.identity billing.payments billing.tariff billing.ledger.commands
writes tariff billing.tariff billing.tariff.dlq
reads tariff tariff billing.identity billing.ledger
writes notifier billing.notifier billing.notifier.dlq
reads notifier notifier billing.identity billing.ledger billing.tariff

# The payment channels' gateway (shops, terminals, card and bank gateways, e-wallets).
writes payment-channels billing.payments

# Operators: `billing do pay` is a payment channel; `billing verify` reads the seals (with no
# consumer group: it commits nothing).
writes operations billing.payments
allow operations --operation Read --operation Describe --topic "${prefix}billing.ledger.seals"

# The topic job (`billing_events.admin create-topics`) and `rewind-group`, which moves a stopped
# service's group back: they create and describe topics and commit the services' offsets, and
# write nothing.
allow admin --operation Create --operation Describe --operation DescribeConfigs --operation Read \
  --topic "${prefix}billing." --resource-pattern-type prefixed
for group in identity ledger tariff notifier; do
  allow admin --operation Read --operation Describe --group "$prefix$group"
done
