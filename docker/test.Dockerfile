# A fresh Debian 12 on which the README's two commands run, as CI does on a clean machine.
#   docker build -f docker/test.Dockerfile -t rlm-rust-test .
#   docker run --rm --privileged rlm-rust-test      # scripts/test.sh (tests mount tmpfs, use dpkg)
#   docker run --rm -it -p 18120-18121:18120-18121/udp rlm-rust-test scripts/run.sh
FROM debian:12
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates curl build-essential git python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_BREAK_SYSTEM_PACKAGES=1
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN bash scripts/deps.sh && cargo build --release
CMD ["bash", "scripts/test.sh"]
