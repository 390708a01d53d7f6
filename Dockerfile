FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tenure-server

FROM debian:bookworm-slim
RUN useradd --system tenure
COPY --from=build /src/target/release/tenure /usr/local/bin/tenure
USER tenure
ENV TENURE_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["tenure"]
CMD ["serve"]
