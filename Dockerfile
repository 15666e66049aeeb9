# syntax=docker/dockerfile:1
#
# Yggdrasil images: one target per binary, all built from this file.
#
#   docker build --target api       -t yggdrasil/api .
#   docker build --target sweeper   -t yggdrasil/sweeper .
#   docker build --target hooks     -t yggdrasil/hooks .
#   docker build --target ratatoskr -t yggdrasil/ratatoskr .
#
# The binaries are static (CGO_ENABLED=0), built with -trimpath and stripped;
# deploy/test builds them with the same flags and checks that they are static.
# The services run on distroless static (no shell, no package manager, CA
# certificates and tzdata only) as the nonroot user 65532; the images have
# no curl, so each binary probes itself with its `healthcheck` subcommand.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# GOWORK=off: each module builds on its own go.mod (its replace directive
# points at ../shared), so the workspace's test-only modules are not needed.
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false
# Module files first: the download layer stays cached until one changes.
COPY shared/go.mod shared/go.sum shared/
COPY services/api/go.mod services/api/go.sum services/api/
COPY services/sweeper/go.mod services/sweeper/go.sum services/sweeper/
COPY services/hooks/go.mod services/hooks/go.sum services/hooks/
COPY runner/go.mod runner/go.sum runner/
RUN for m in services/api services/sweeper services/hooks runner; do (cd "$m" && go mod download) || exit 1; done
COPY shared/ shared/
COPY services/ services/
COPY runner/ runner/
ARG VERSION=0.1.0
RUN cd services/api && go build -trimpath -ldflags="-s -w" -o /out/api .
RUN cd services/sweeper && go build -trimpath -ldflags="-s -w" -o /out/sweeper .
RUN cd services/hooks && go build -trimpath -ldflags="-s -w" -o /out/hooks .
RUN cd runner && go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/ratatoskr .

FROM gcr.io/distroless/static-debian12:nonroot AS api
COPY --from=build /out/api /usr/local/bin/api
USER 65532:65532
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/local/bin/api", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/api"]

FROM gcr.io/distroless/static-debian12:nonroot AS sweeper
COPY --from=build /out/sweeper /usr/local/bin/sweeper
USER 65532:65532
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/local/bin/sweeper", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sweeper"]

FROM gcr.io/distroless/static-debian12:nonroot AS hooks
COPY --from=build /out/hooks /usr/local/bin/hooks
USER 65532:65532
EXPOSE 3002
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/local/bin/hooks", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/hooks"]

# The agent runs script tasks with /bin/sh -c, which distroless lacks, so its
# image is Debian slim (still static binary, still user 65532). Tasks run as
# that user: give the image the tools your tasks need by building FROM this
# target.
FROM debian:12-slim AS ratatoskr
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/ratatoskr /usr/local/bin/ratatoskr
ENV RUNNER_STATE_DIR=/var/lib/ratatoskr
RUN mkdir -p /var/lib/ratatoskr && chown 65532:65532 /var/lib/ratatoskr
USER 65532:65532
VOLUME ["/var/lib/ratatoskr"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/local/bin/ratatoskr", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ratatoskr"]
