# lampgw and lampsim, static, on a distroless base with no shell.
#   docker build -t lampgw .
#   docker run --rm -p 1883:1883 -p 8083:8083 -p 8080:8080 -p 7000:7000 -v lampgw-data:/data lampgw
#   docker run --rm --entrypoint /lampsim lampgw --help
# docker-compose.yml runs both. cmd/lampgw/docker_test.go and
# cmd/lampsim/docker_test.go check this file against the repo and the
# binaries' flags; keep it to what their parser reads (no heredocs, no
# variables in COPY).

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
# The patched broker go.mod replaces mochi with (third_party/README.md).
COPY third_party ./third_party
RUN go mod download
COPY . .
# CGO_ENABLED=0: static binaries, which the distroless static base needs
# (it has no libc).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/lampgw ./cmd/lampsim
# The runtime image has no shell to mkdir with; this empty directory is
# copied in owned by nonroot, and Docker gives a new named volume mounted
# on /data that ownership, so lampgw can write its data there.
RUN mkdir /data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lampgw /out/lampsim /
COPY --from=build --chown=65532:65532 /data /data
# The base already runs as nonroot; said again, numerically, so that a
# change of base cannot make it root and Kubernetes' runAsNonRoot can
# verify it.
USER 65532:65532
WORKDIR /data
ENV LAMPGW_DATA_DIR=/data
VOLUME /data
# MQTT, MQTT over WebSocket (/mqtt), HTTP (/healthz), lamps (raw TCP).
EXPOSE 1883 8083 8080 7000
# Exec form: the image has no shell. `lampgw healthcheck` reads the same
# LAMPGW_* environment and --config as the gateway, so it probes the HTTP
# address the gateway listens on; it gives up after 3 s, inside --timeout.
# Flags given to the gateway on its command line do not reach it: set
# listen addresses through the environment (or a config file) instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/lampgw", "healthcheck"]
ENTRYPOINT ["/lampgw"]
