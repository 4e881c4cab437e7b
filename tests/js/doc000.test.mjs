// Document 000 with the Azure SDK for JavaScript at its current releases:
// a locked-down vault reached through private endpoints in both regions, a
// firewalled cache account, a VM whose disk bytes are written over NBD,
// replication, unplanned failover, the bytes checked on the failed-over
// disk, commit. No api-version is pinned or rewritten: each package sends
// its own.

import test from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import { ClientSecretCredential } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";
import { NetworkManagementClient } from "@azure/arm-network";
import { PrivateDnsManagementClient } from "@azure/arm-privatedns";
import { RecoveryServicesClient } from "@azure/arm-recoveryservices";
import { SiteRecoveryManagementClient } from "@azure/arm-recoveryservices-siterecovery";
import { StorageManagementClient } from "@azure/arm-storage";
import { ComputeManagementClient } from "@azure/arm-compute";
import { AuthorizationManagementClient } from "@azure/arm-authorization";

import { connection, qemuIo } from "./harness.mjs";

const SRC_RG = "js-dr-app";
const DST_RG = "js-dr-app-asr";
const VAULT = "js-dr-vault";
const ROLES = {
  Contributor: "b24988ac-6180-42a0-ab88-20f7382dd24c",
  "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
};

test("document 000 through failover and commit, bytes checked", async (t) => {
  const c = connection();
  const sub = c.subscriptionId;
  const cred = new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret, {
    authorityHost: c.authority,
    disableInstanceDiscovery: true,
  });
  const opts = { endpoint: c.armEndpoint };
  const rm = new ResourceManagementClient(cred, sub, opts);
  const net = new NetworkManagementClient(cred, sub, opts);
  const pdns = new PrivateDnsManagementClient(cred, sub, opts);
  const rs = new RecoveryServicesClient(cred, sub, opts);
  const sr = new SiteRecoveryManagementClient(cred, sub, opts);
  const st = new StorageManagementClient(cred, sub, opts);
  const compute = new ComputeManagementClient(cred, sub, opts);
  const auth = new AuthorizationManagementClient(cred, sub, opts);
  const poll = { updateIntervalInMs: 300 };
  const base = (rg) => `/subscriptions/${sub}/resourceGroups/${rg}/providers`;
  let steps = 0;
  let broken = null;
  // Each step needs the ones before it: after a failure the rest are skipped.
  const step = async (name, fn) => {
    await t.test(name, { skip: broken ? `after "${broken}" failed` : false }, async () => {
      try {
        await fn();
        steps += 1;
      } catch (e) {
        broken = name;
        throw e;
      }
    });
  };

  await step("resource groups and a locked-down vault with its identity", async () => {
    await rm.resourceGroups.createOrUpdate(SRC_RG, { location: "eastus" });
    await rm.resourceGroups.createOrUpdate(DST_RG, { location: "centralus" });
  });
  const vault = await rs.vaults.beginCreateOrUpdateAndWait(SRC_RG, VAULT, {
    location: "centralus", sku: { name: "Standard" }, identity: { type: "SystemAssigned" },
    properties: { publicNetworkAccess: "Disabled" },
  }, poll);
  assert.ok(vault.identity.principalId);

  const sites = { source: [SRC_RG, "eastus", "app-vnet"], recovery: [DST_RG, "centralus", "app-vnet-asr"] };
  const subnet = {};
  await step("networks in both regions, subnets in the order given", async () => {
    for (const [site, [rg, region, name]] of Object.entries(sites)) {
      const v = await net.virtualNetworks.beginCreateOrUpdateAndWait(rg, name, {
        location: region, addressSpace: { addressPrefixes: ["10.30.0.0/16"] },
        subnets: [{ name: "vms", addressPrefix: "10.30.1.0/24" }, { name: "pe", addressPrefix: "10.30.2.0/24" }],
      }, poll);
      assert.deepEqual(v.subnets.map((s) => s.name), ["vms", "pe"]);
      subnet[site] = v.subnets[0].id;
    }
  });

  const endpoint = async (site, peName, target, group, zone) => {
    const [rg, region, vnet] = sites[site];
    const pe = await net.privateEndpoints.beginCreateOrUpdateAndWait(rg, peName, {
      location: region, subnet: { id: subnet[site] },
      privateLinkServiceConnections: [{ name: group, privateLinkServiceId: target, groupIds: [group] }],
    }, poll);
    await pdns.privateZones.beginCreateOrUpdateAndWait(rg, zone, { location: "global" }, poll);
    await pdns.virtualNetworkLinks.beginCreateOrUpdateAndWait(rg, zone, `${vnet}-link`, {
      location: "global", virtualNetwork: { id: subnet[site].split("/subnets/")[0] }, registrationEnabled: false,
    }, poll);
    await net.privateDnsZoneGroups.beginCreateOrUpdateAndWait(rg, peName, "default", {
      privateDnsZoneConfigs: [{ name: group, privateDnsZoneId: `${base(rg)}/Microsoft.Network/privateDnsZones/${zone}` }],
    }, poll);
    return pe;
  };

  await step("Site Recovery private endpoints, one per network, each with its zone", async () => {
    for (const site of Object.keys(sites)) {
      const pe = await endpoint(site, `${site}-asr-pe`, vault.id, "AzureSiteRecovery", "privatelink.siterecovery.windowsazure.com");
      assert.equal(pe.privateLinkServiceConnections[0].privateLinkServiceConnectionState.status, "Approved");
      assert.ok(pe.customDnsConfigs.length >= 5, JSON.stringify(pe.customDnsConfigs));
    }
  });

  let cache;
  await step("a firewalled cache account with a blob endpoint and the vault's roles", async () => {
    cache = await st.storageAccounts.create(SRC_RG, "jsdrcacheeast", {
      location: "eastus", kind: "StorageV2", sku: { name: "Standard_LRS" },
      // The SDK sends `properties` only if a property other than
      // networkRuleSet is set (its serializer checks "NetworkRuleSet").
      minimumTlsVersion: "TLS1_2", allowBlobPublicAccess: false,
      networkRuleSet: { defaultAction: "Deny", bypass: "AzureServices" },
    }, poll);
    assert.equal(cache.networkRuleSet.defaultAction, "Deny");
    await endpoint("source", "jsdrcacheeast-blob-pe", cache.id, "blob", "privatelink.blob.core.windows.net");
    for (const guid of Object.values(ROLES)) {
      await auth.roleAssignments.create(cache.id, randomUUID(), {
        roleDefinitionId: `/subscriptions/${sub}/providers/Microsoft.Authorization/roleDefinitions/${guid}`,
        principalId: vault.identity.principalId, principalType: "ServicePrincipal",
      });
    }
  });

  let vm, osDisk;
  await step("the VM: a NIC, an OS disk and an empty 64 GiB data disk", async () => {
    const nic = await net.networkInterfaces.beginCreateOrUpdateAndWait(SRC_RG, "app-nic", {
      location: "eastus", ipConfigurations: [{ name: "ipconfig1", subnet: { id: subnet.source } }],
    }, poll);
    osDisk = await compute.disks.beginCreateOrUpdateAndWait(SRC_RG, "app-os", {
      location: "eastus", sku: { name: "Premium_LRS" }, creationData: { createOption: "Empty" }, diskSizeGB: 32, osType: "Linux",
    }, poll);
    vm = await compute.virtualMachines.beginCreateOrUpdateAndWait(SRC_RG, "app", {
      location: "eastus",
      hardwareProfile: { vmSize: "Standard_D2s_v3" },
      storageProfile: {
        osDisk: { createOption: "Attach", osType: "Linux", managedDisk: { id: osDisk.id } },
        dataDisks: [{ lun: 0, createOption: "Empty", diskSizeGB: 64, managedDisk: { storageAccountType: "Premium_LRS" } }],
      },
      networkProfile: { networkInterfaces: [{ id: nic.id }] },
    }, poll);
    assert.equal(vm.storageProfile.dataDisks[0].name, "app_DataDisk_0");
  });

  let policy, targetC;
  await step("fabrics, containers, a 24-hour policy, the East US → Central US mapping", async () => {
    for (const [fabric, region] of [["asr-eastus", "eastus"], ["asr-centralus", "centralus"]]) {
      await sr.replicationFabrics.beginCreateAndWait(VAULT, SRC_RG, fabric, { properties: { customDetails: { instanceType: "Azure", location: region } } }, poll);
      await sr.replicationProtectionContainers.beginCreateAndWait(VAULT, SRC_RG, fabric, `${fabric}-c`, { properties: { providerSpecificInput: [{ instanceType: "A2A" }] } }, poll);
    }
    policy = await sr.replicationPolicies.beginCreateAndWait(VAULT, SRC_RG, "24-hour-retention", { properties: { providerSpecificInput: {
      instanceType: "A2A", recoveryPointHistory: 1440, appConsistentFrequencyInMinutes: 240, multiVmSyncStatus: "Disable" } } }, poll);
    targetC = await sr.replicationProtectionContainers.get(VAULT, SRC_RG, "asr-centralus", "asr-centralus-c");
    await sr.replicationProtectionContainerMappings.beginCreateAndWait(VAULT, SRC_RG, "asr-eastus", "asr-eastus-c", "eastus-to-centralus", {
      properties: { targetProtectionContainerId: targetC.id, policyId: policy.id, providerSpecificInput: { instanceType: "A2A" } },
    }, poll);
  });

  const token = (await cred.getToken(`${c.armEndpoint}/.default`)).token;
  const nbd = await (await fetch(`${c.armEndpoint}/recoverite/nbd`, { headers: { Authorization: `Bearer ${token}` } })).json();
  const disk = (rg, name) => nbd.unixUri.replace("{resourceGroup}", rg).replace("{diskName}", name);
  const item = [VAULT, SRC_RG, "asr-eastus", "asr-eastus-c", "app"];

  await step("known bytes on the data disk, then replication enabled", async () => {
    assert.ok(qemuIo(disk(SRC_RG, "app_DataDisk_0"), "write -P 0xa1 0 4M").ok);
    const rg = `/subscriptions/${sub}/resourceGroups/${DST_RG}`;
    const disks = [osDisk.id, vm.storageProfile.dataDisks[0].managedDisk.id];
    const it = await sr.replicationProtectedItems.beginCreateAndWait(...item, { properties: { policyId: policy.id, providerSpecificDetails: {
      instanceType: "A2A", fabricObjectId: vm.id, recoveryContainerId: targetC.id, recoveryResourceGroupId: rg,
      vmManagedDisks: disks.map((d) => ({ diskId: d, primaryStagingAzureStorageAccountId: cache.id, recoveryResourceGroupId: rg })),
    } } }, poll);
    assert.equal(it.properties.protectionState, "Protected");
  });

  await step("the application writes; the agent ships them", async () => {
    assert.ok(qemuIo(disk(SRC_RG, "app_DataDisk_0"), "write -P 0xb2 1M 1M", "write -P 0xc3 40G 256k").ok);
    const deadline = Date.now() + 60000;
    for (;;) {
      const it = await sr.replicationProtectedItems.get(...item);
      const pending = it.properties.providerSpecificDetails.protectedManagedDisks.map((d) => d.dataPendingAtSourceAgentInMB ?? 0);
      if (pending.every((p) => p === 0)) break;
      assert.ok(Date.now() < deadline, `replication did not catch up: ${JSON.stringify(it.properties.healthErrors)}`);
      await sleep(200);
    }
  });

  await step("unplanned failover to Central US; the replica holds the bytes", async () => {
    const failed = await sr.replicationProtectedItems.beginUnplannedFailoverAndWait(...item, { properties: {
      failoverDirection: "PrimaryToRecovery", sourceSiteOperations: "NotRequired", providerSpecificDetails: { instanceType: "A2A" } } }, poll);
    assert.equal(failed.properties.activeLocation, "Recovery");
    const check = qemuIo(disk(DST_RG, "app_DataDisk_0-ASRReplica"), "read -P 0xa1 0 1M", "read -P 0xb2 1M 1M", "read -P 0xa1 2M 2M", "read -P 0xc3 40G 256k");
    assert.ok(check.ok, check.out);
    const recovered = await compute.virtualMachines.get(DST_RG, "app");
    assert.equal(recovered.location, "centralus");
  });

  await step("commit", async () => {
    const done = await sr.replicationProtectedItems.beginFailoverCommitAndWait(...item, poll);
    // Committed: the recovery point is final and reprotect is what is left.
    assert.equal(done.properties.activeLocation, "Recovery");
    assert.ok(done.properties.allowedOperations.includes("ReverseReplicate"), done.properties.allowedOperations.join(","));
    assert.ok(!done.properties.allowedOperations.includes("FailoverCommit"), done.properties.allowedOperations.join(","));
  });

  await step("the jobs tell the story", async () => {
    const jobs = [];
    for await (const j of sr.replicationJobs.list(VAULT, SRC_RG)) jobs.push(j.properties.scenarioName);
    for (const s of ["EnableDr", "UnplannedFailover", "CommitFailover"]) assert.ok(jobs.includes(s), jobs.join(","));
  });
  console.log(`document 000 with the JavaScript SDK: ${steps} steps passed`);
});
