# syntax=docker/dockerfile:1
# logrouter's image, for those who build with Docker (BuildKit). Machines without a Docker
# engine build the same image with `go run ./deploy/image/build` (docs/image.md).
#
#   docker build -t logrouter .                                  # every command (default target)
#   docker build --target collector -t logrouter-collector .     # collect only, for the DaemonSet
#
# Both are a static binary (CGO_ENABLED=0) on distroless/static: no shell, user 65532 (nonroot),
# CA certificates, entrypoint /logrouter. Labels: pass --build-arg VERSION, REVISION, CREATED.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS source
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .

# Cross-compiled on the build platform: multi-arch with `docker buildx build --platform
# linux/amd64,linux/arm64` costs no emulation.
FROM source AS build-full
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/logrouter ./cmd/logrouter

FROM source AS build-collector
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -tags collector -o /out/logrouter ./cmd/logrouter

FROM gcr.io/distroless/static-debian12:nonroot AS base
ARG VERSION=dev REVISION=unknown CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.source="https://github.com/logrouter/logrouter" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
USER 65532:65532
ENTRYPOINT ["/logrouter"]

FROM base AS collector
LABEL org.opencontainers.image.title="logrouter-collector"
COPY --from=build-collector /out/logrouter /logrouter

# Last, so that a plain `docker build` builds it.
FROM base AS full
LABEL org.opencontainers.image.title="logrouter"
COPY --from=build-full /out/logrouter /logrouter
