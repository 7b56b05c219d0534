# Sputnik in a container: `docker build -t sputnik .` then `docker run -p 8080:8080 sputnik` serves the bundled
# sputnik-r1-tiny (embedded in the CLI) with the OpenAI-compatible API, /health and /metrics on port 8080.
# docs/deploy.md explains the flags, the volume and the Kubernetes manifests in deploy/kubernetes/.

# --- build: restore and publish the CLI (framework-dependent; the runtime stage brings ASP.NET Core) ---
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project files alone, so a source change does not invalidate the package layer.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/Sputnik/Sputnik.csproj src/Sputnik/
COPY src/Sputnik.Server/Sputnik.Server.csproj src/Sputnik.Server/
COPY src/Sputnik.Cli/Sputnik.Cli.csproj src/Sputnik.Cli/
RUN dotnet restore src/Sputnik.Cli/Sputnik.Cli.csproj
COPY src/ src/
# The bundled model is embedded into Sputnik.Cli.dll when this file is present at build time.
COPY models/sputnik-r1-tiny.gguf models/
COPY README.md ./
RUN dotnet publish src/Sputnik.Cli/Sputnik.Cli.csproj -c Release --no-restore -o /app

# --- runtime: no SDK, no compiler, a non-root user ---
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
# /data holds the prompt-cache snapshots (--cache-dir, shareable between replicas) and the chat history;
# mount a volume there to keep them. HOME is where the embedded model is extracted on first start.
RUN mkdir -p /data/prompt-cache && chown -R $APP_UID /data
ENV HOME=/data \
    DOTNET_gcServer=0
VOLUME /data
# The base image's unprivileged "app" user (UID 1654).
USER $APP_UID
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/Sputnik.Cli.dll"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--cache-dir", "/data/prompt-cache", "--data-dir", "/data"]
