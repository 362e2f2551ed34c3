# ward's container image: a static binary on a distroless base, run as a
# non-root user, its data directory a volume.
#
#   docker build -t ward .
#   docker run --rm -v ward-data:/var/lib/ward -p 8443:8443 ward
#
# The image runs built-in servers and remote (url:) MCP servers; a stdio
# server (command:) needs its runtime in the image: build FROM this one
# and add it. examples/deploy runs three nodes on PostgreSQL.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (no cgo: SQLite is modernc.org/sqlite, pure Go) and reproducible.
# cmd/ward's TestDockerBuild runs this same command.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ward ./cmd/ward
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ward /usr/local/bin/ward
# The data directory (CA and node keys, audit log, SQLite store) belongs
# to the image's user, nonroot (65532).
COPY --from=build --chown=65532:65532 /out/data /var/lib/ward
USER 65532:65532
VOLUME /var/lib/ward
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/ward"]
CMD ["up", "--data", "/var/lib/ward", "--addr", "0.0.0.0:8443"]
