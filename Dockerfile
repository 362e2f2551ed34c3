# ward's container image: the static ward binary and the few files a
# static Go program needs, on an empty base, run as a non-root user, its
# data directory a volume.
#
#   make image                      # builds ward:dev (IMAGE=NAME:TAG to rename)
#   docker run --rm -v ward-data:/var/lib/ward -p 8443:8443 ward:dev
#
# Build it with `make image`, not `docker build .`: make builds the binary
# (CGO_ENABLED=0 go build -trimpath, so static: SQLite is modernc.org's,
# pure Go) and stages the root filesystem below in a directory of its own,
# which is this file's whole build context. Nothing is pulled from a
# registry, so the image builds where none is reachable, and it holds only
# what is listed here:
#
#   rootfs/usr/local/bin/ward               the binary
#   rootfs/etc/passwd, group                root and nonroot (65532), no shells
#   rootfs/etc/nsswitch.conf                hosts: files dns
#   rootfs/etc/ssl/certs/ca-certificates.crt  the build host's CA bundle
#                                           (PostgreSQL with sslmode=verify-full,
#                                           remote MCP servers, webhooks)
#   rootfs/tmp                              1777
#   rootfs/var/lib, rootfs/home             root's, 0755
#   nonroot/lib/ward, nonroot/home/nonroot  empty, 0700: the data directory
#                                           and nonroot's home, copied below
#                                           as nonroot's
#
# The image runs built-in servers and remote (url:) MCP servers; a stdio
# server (command:) needs its runtime, which this empty base lacks: copy
# the static binary into an image that has it
# (COPY --from=ward:dev /usr/local/bin/ward /usr/local/bin/ward).
# examples/deploy runs three nodes on PostgreSQL, and cmd/ward's
# TestImage builds this image with make image and runs them.

FROM scratch
COPY rootfs/ /
# The data directory (CA and node keys, audit log, SQLite store) and the
# home belong to the image's user, nonroot (65532), mode 0700; a volume
# created from the image starts so (TestImage checks it). /var/lib and
# /home exist already, so they stay root's.
COPY --chown=65532:65532 nonroot/lib/ /var/lib/
COPY --chown=65532:65532 nonroot/home/ /home/
USER 65532:65532
# ward's client commands in the container (docker exec … ward session
# list, the health check) trust the node's CA and ask 127.0.0.1:8443.
ENV HOME=/home/nonroot WARD_CA=/var/lib/ward/bundle.pem
# Readiness: GET /healthz, by ward itself (ward health). A node given
# another --addr needs WARD_SERVER set to it, as compose.host.yaml does.
HEALTHCHECK --interval=10s --timeout=6s --start-period=60s --retries=3 CMD ["/usr/local/bin/ward", "health"]
VOLUME /var/lib/ward
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/ward"]
CMD ["up", "--data", "/var/lib/ward", "--addr", "0.0.0.0:8443"]
