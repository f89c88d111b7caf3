# wasmsrv's container image: a static binary, the CA roots, the non-root user
# 65532 and the data volume /data with the compile cache under it (/data/cache),
# so a restart that keeps the volume skips the first compile of every module.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t wasmsrv .
#   docker run -p 8080:8080 -v ./site.toml:/etc/wasmsrv/site.toml:ro -v wasmsrv-data:/data wasmsrv
#   docker run -p 8080:8080 -v ./app:/app:ro wasmsrv run /app/main.wasm
#
# `go run ./cmd/wasmsrv-image -o wasmsrv.tar` builds the same image without a Docker
# daemon (internal/ociimage; TestDockerfileMatchesLayout keeps the two the same, and
# TestImageRunsUnderRunc runs that image with runc). docs/deploy.md has the rest.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETARCH
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH:-amd64} \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/usr/local/bin/wasmsrv ./cmd/wasmsrv
RUN mkdir -p /out/etc/ssl/certs /out/etc/wasmsrv /out/data/cache /out/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /out/etc/group \
 && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /out/etc/ /etc/
COPY --from=build /out/usr/ /usr/
COPY --from=build --chmod=1777 /out/tmp/ /tmp/
COPY --from=build --chown=65532:65532 /out/data/ /data/
ENV PATH=/usr/local/bin \
    HOME=/data \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    WASMSRV_CONFIG=/etc/wasmsrv/site.toml \
    WASMSRV_CACHE_DIR=/data/cache \
    WASMSRV_KV_PATH=/data/kv.db \
    WASMSRV_LISTEN=0.0.0.0:8080 \
    WASMSRV_LOG_FORMAT=json
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wasmsrv"]
CMD ["serve"]
