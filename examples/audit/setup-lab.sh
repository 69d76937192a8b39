#!/bin/bash
# Sets up the lab network and a tracing container.
set -euo pipefail

echo "run: podman run --network host ..."   # only text, not a command

podman network create \
    --driver macvlan \
    -o parent=eth0 \
    lab-lan

podman network create --internal lab-private

sudo podman run -d --name tracer \
    --network lab-private \
    --privileged \
    docker.io/library/alpine:3.20 sleep infinity
