#!/bin/sh
# Container entrypoint: Railway (like Docker named volumes) mounts a volume owned by root, which
# the service user could not write. So the container starts as root only long enough to give the
# data and state directories to that user, then runs the server as it, never as root.
#
#   GOTORRENT_HOME  where data/ and state/ live (the volume's mount point)  [/srv/gotorrent]
#   GOTORRENT_USER  the user the server runs as                              [gotorrent]
set -eu
home="${GOTORRENT_HOME:-/srv/gotorrent}"
user="${GOTORRENT_USER:-gotorrent}"

if [ "$(id -u)" -ne 0 ]; then
  # Started as a user already (docker run --user, RAILWAY_RUN_UID): nothing to hand over.
  exec "$@"
fi
group="$(id -gn "$user")"
mkdir -p "$home/data" "$home/state"
# Only what is not the user's yet: a large volume is not walked again on every start.
find "$home" -xdev \( ! -user "$user" -o ! -group "$group" \) -exec chown "$user:$group" {} +
exec setpriv --reuid="$user" --regid="$group" --init-groups --inh-caps=-all -- "$@"
