# wharfie's own image: `bash scripts/image.sh DEST` builds it with wharfie itself.
# Everything wharfie needs lives under /wharfie, so an in-place build may replace the rest
# of `/` (image/README.md says how and why).
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS assemble
# Python, a static busybox, CA certificates, util-linux's unshare, libseccomp: taken from the base when it
# has them (the tests' offline base does), else installed from Debian's mirror.
RUN set -eu; missing=""; \
    for pkg in python3 busybox-static ca-certificates util-linux libseccomp2; do \
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q " installed" || missing="$missing $pkg"; \
    done; \
    if [ -n "$missing" ]; then \
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/*; \
    fi
# wharfie and the packages it depends on, from the wheels scripts/image.sh put in the context;
# pip itself runs from its wheel there, so the base needs none.
COPY wheels /src/wheels
RUN set -eu; pip_wheel=$(ls /src/wheels/pip-*.whl); \
    python3 "$pip_wheel/pip" install --quiet --disable-pip-version-check --no-warn-script-location \
        --root-user-action=ignore --no-index --find-links /src/wheels \
        --target /out/wharfie/lib/python3/dist-packages wharfie
COPY image/assemble.py image/selfcheck.py image/sitecustomize.py /src/image/
RUN python3 /src/image/assemble.py /out
# The proof: wharfie runs in a root that holds nothing else.
RUN mkdir /check && cp -a /out/. /check/ \
    && env -i PATH=/wharfie/bin SSL_CERT_FILE=/wharfie/etc/ssl/certs/ca-certificates.crt \
        /usr/sbin/chroot /check sh -c 'python3 -I - && wharfie --version' < /src/image/selfcheck.py \
    && rm -rf /check

FROM scratch
COPY --from=assemble /out/ /
ENV PATH=/wharfie/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DOCKER_CONFIG=/kaniko/.docker \
    SSL_CERT_DIR=/kaniko/ssl/certs \
    SSL_CERT_FILE=/wharfie/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/kaniko/executor"]
