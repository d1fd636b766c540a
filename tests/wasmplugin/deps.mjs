// The validator's dependencies, resolved from the folder scripts/install-node-tools.sh installs
// them into (.tools/node): it copies this file next to that node_modules.
export * as yaml from "js-yaml";
export { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";

// The model's TypeScript declaration, generated from Istio's WasmPlugin CRD: the field tree the
// strict unknown-field check walks.
export const wasmPluginTypes = new URL(
  "./node_modules/@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin.d.ts",
  import.meta.url,
);
export const nodeModules = new URL("./node_modules/", import.meta.url);
