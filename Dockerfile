# syntax=docker/dockerfile:1
# usage-rollup image: a static Go binary on distroless, running as the non-root user 65532.
#
#   docker build -t usage-rollup .
#   docker run --rm -e KAFKA_BROKERS=... -e CLICKHOUSE_ADDR=... -p 9464:9464 usage-rollup
#   docker run --rm -e KAFKA_BROKERS=... -e CLICKHOUSE_ADDR=... usage-rollup migrate
#
# The build flags are the ones deploy/helm/charttest checks (TestStaticBuild): the binary must
# stay statically linked, because the runtime image has no libc.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: static, runs on distroless/static. -trimpath: no build paths in the binary.
# -s -w: no symbol table or DWARF (smaller image; stack traces keep function names).
# The target platform comes from BuildKit; the compiler itself runs natively on $BUILDPLATFORM.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w" -o /out/usage-rollup ./cmd/consumer

# static-debian12 has CA certificates (system roots for Kafka/ClickHouse TLS without a CA file),
# tzdata and /etc/passwd with the nonroot user 65532; no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/usage-rollup /usr/local/bin/usage-rollup
USER 65532:65532
# Prometheus /metrics, /livez and /readyz (METRICS_ADDR, default :9464).
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/usage-rollup"]
