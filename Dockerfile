# lampgw: an MQTT broker plus a bridge for legacy raw-TCP lamps.
#   docker build -t lampgw .
#   docker run --rm -p 1883:1883 -p 8083:8083 -p 7000:7000 -p 8080:8080 -v lampgw-data:/data lampgw

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /lampgw ./cmd/lampgw
# The runtime image has no shell to mkdir with; this empty directory is
# copied in owned by nonroot, and Docker gives a new named volume mounted
# on /data that ownership, so lampgw can write its data there.
RUN mkdir /data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /lampgw /lampgw
COPY --from=build --chown=65532:65532 /data /data
WORKDIR /data
ENV LAMPGW_DATA_DIR=/data
# MQTT, MQTT over WebSocket (/mqtt), lamps (raw TCP), HTTP (/healthz).
EXPOSE 1883 8083 7000 8080
# No HEALTHCHECK: distroless has no curl or shell. Probe GET /healthz on
# 8080 from outside (an orchestrator's HTTP probe) until lampgw grows a
# `lampgw healthcheck` subcommand that can run here.
ENTRYPOINT ["/lampgw"]
