// The validator's dependencies, resolved from the folder scripts/install-node-tools.sh installs
// them into (.tools/node): it copies this file next to that node_modules.
export * as yaml from "js-yaml";
export { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
export { Telemetry } from "@kubernetes-models/istio/telemetry.istio.io/v1/Telemetry";
export { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";
export { EnvoyFilter } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter";

// The models' TypeScript declarations, generated from Istio's CRDs: the field trees the strict
// unknown-field check walks.
export const wasmPluginTypes = new URL(
  "./node_modules/@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin.d.ts",
  import.meta.url,
);
export const telemetryTypes = new URL(
  "./node_modules/@kubernetes-models/istio/telemetry.istio.io/v1/Telemetry.d.ts",
  import.meta.url,
);
export const virtualServiceTypes = new URL(
  "./node_modules/@kubernetes-models/istio/networking.istio.io/v1/VirtualService.d.ts",
  import.meta.url,
);
export const envoyFilterTypes = new URL(
  "./node_modules/@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter.d.ts",
  import.meta.url,
);
export const nodeModules = new URL("./node_modules/", import.meta.url);
