/**
 * The built-in Prometheus endpoint (config `telemetry.prometheus`): a MeterProvider of our own,
 * read by a PrometheusExporter that opens no server itself; ProvenantPlugin serves the exporter's
 * handler at `http://host:port/metrics` while its workers run, and closes it after the last one.
 * Used only when the config names a port and the user passed no Meter of their own.
 */
import http from 'node:http';
import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { TelemetryConfig } from '../config/schema.js';
import { TOOL_NAME, TOOL_VERSION } from '../version.js';

export class PrometheusEndpoint {
  readonly meter: Meter;
  private readonly exporter = new PrometheusExporter({ preventServerStart: true });
  private readonly provider: MeterProvider;
  private listening: Promise<http.Server> | undefined;

  constructor(private readonly o: { port: number; host: string }) {
    this.provider = new MeterProvider({ readers: [this.exporter] });
    this.meter = this.provider.getMeter(TOOL_NAME, TOOL_VERSION);
  }

  /** The endpoint the config names, or undefined when it names no port. */
  static of(t: TelemetryConfig): PrometheusEndpoint | undefined {
    const { port, host } = t.prometheus;
    return port ? new PrometheusEndpoint({ port, host }) : undefined;
  }

  get url(): string {
    const host = this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host;
    return `http://${host}:${this.o.port}/metrics`;
  }

  /** Listen (once, however often called); rejects when the port cannot be had. */
  async start(): Promise<void> {
    this.listening ??= this.listen().catch((err: unknown) => {
      this.listening = undefined;
      throw err;
    });
    await this.listening;
  }

  private async listen(): Promise<http.Server> {
    const server = http.createServer((req, res) => {
      const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (req.method === 'GET' && pathname === '/metrics') {
        this.exporter.getMetricsRequestHandler(req, res);
        return;
      }
      res.statusCode = 404;
      res.end('not found: metrics are at /metrics\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server;
  }

  /** Stop listening; the meter keeps counting, and a later start serves the same totals. */
  async stop(): Promise<void> {
    const server = await this.listening?.catch(() => undefined);
    this.listening = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
