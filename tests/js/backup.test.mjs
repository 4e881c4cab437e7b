// Azure Backup for a VM with the Azure SDK for JavaScript at its current
// release (@azure/arm-recoveryservicesbackup): the default policies,
// protection, an on-demand backup followed from its Azure-AsyncOperation to
// its job (which runs after the 202, as in Azure), a restore of the point
// whose bytes are checked over NBD, and stopping protection with the data
// soft-deleted. No api-version is pinned or rewritten.

import test from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";

import { ClientSecretCredential } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";
import { NetworkManagementClient } from "@azure/arm-network";
import { RecoveryServicesClient } from "@azure/arm-recoveryservices";
import { RecoveryServicesBackupClient } from "@azure/arm-recoveryservicesbackup";
import { StorageManagementClient } from "@azure/arm-storage";
import { ComputeManagementClient } from "@azure/arm-compute";

import { connection, qemuIo } from "./harness.mjs";

const RG = "js-bk-app";
const VAULT = "js-bk-vault";
const VM = "jsbkvm";
const CONTAINER = `iaasvmcontainer;iaasvmcontainerv2;${RG};${VM}`;
const ITEM = `vm;iaasvmcontainerv2;${RG};${VM}`;

test("Backup: protect, back up, restore the point's bytes, soft-delete", async () => {
  const c = connection();
  const sub = c.subscriptionId;
  const cred = new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret, {
    authorityHost: c.authority,
    disableInstanceDiscovery: true,
  });
  const opts = { endpoint: c.armEndpoint };
  const poll = { updateIntervalInMs: 300 };
  const rm = new ResourceManagementClient(cred, sub, opts);
  const net = new NetworkManagementClient(cred, sub, opts);
  const rs = new RecoveryServicesClient(cred, sub, opts);
  const bk = new RecoveryServicesBackupClient(cred, sub, opts);
  const st = new StorageManagementClient(cred, sub, opts);
  const compute = new ComputeManagementClient(cred, sub, opts);

  await rm.resourceGroups.createOrUpdate(RG, { location: "eastus" });
  const vnet = await net.virtualNetworks.beginCreateOrUpdateAndWait(RG, "v", {
    location: "eastus", addressSpace: { addressPrefixes: ["10.81.0.0/16"] },
    subnets: [{ name: "vms", addressPrefix: "10.81.1.0/24" }],
  }, poll);
  const nic = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, `${VM}-nic`, {
    location: "eastus", ipConfigurations: [{ name: "ipconfig1", subnet: { id: vnet.subnets[0].id } }],
  }, poll);
  const os = await compute.disks.beginCreateOrUpdateAndWait(RG, `${VM}-os`, {
    location: "eastus", sku: { name: "Standard_LRS" }, creationData: { createOption: "Empty" }, diskSizeGB: 1, osType: "Linux",
  }, poll);
  const vm = await compute.virtualMachines.beginCreateOrUpdateAndWait(RG, VM, {
    location: "eastus",
    hardwareProfile: { vmSize: "Standard_D2s_v3" },
    storageProfile: {
      osDisk: { createOption: "Attach", osType: "Linux", managedDisk: { id: os.id } },
      dataDisks: [{ lun: 0, createOption: "Empty", diskSizeGB: 1, managedDisk: { storageAccountType: "Standard_LRS" } }],
    },
    networkProfile: { networkInterfaces: [{ id: nic.id }] },
  }, poll);
  await rs.vaults.beginCreateOrUpdateAndWait(RG, VAULT, { location: "eastus", sku: { name: "Standard" } }, poll);
  const staging = await st.storageAccounts.beginCreateAndWait(RG, "jsbkstaging", {
    location: "eastus", kind: "StorageV2", sku: { name: "Standard_LRS" },
  }, poll);

  // Every new vault has Azure's default policies.
  const names = [];
  for await (const p of bk.backupPolicies.list(VAULT, RG)) names.push(p.name);
  assert.deepEqual(names, ["DefaultPolicy", "EnhancedPolicy", "HourlyLogBackup"]);
  const policy = await bk.protectionPolicies.get(VAULT, RG, "DefaultPolicy");

  await bk.protectedItems.createOrUpdate(VAULT, RG, "Azure", CONTAINER, ITEM, {
    properties: { protectedItemType: "Microsoft.Compute/virtualMachines", sourceResourceId: vm.id, policyId: policy.id },
  });
  const items = [];
  for await (const i of bk.backupProtectedItems.list(VAULT, RG)) items.push(i);
  assert.equal(items.length, 1);

  const token = (await cred.getToken(`${c.armEndpoint}/.default`)).token;
  const nbd = await (await fetch(`${c.armEndpoint}/recoverite/nbd`, { headers: { Authorization: `Bearer ${token}` } })).json();
  const disk = (rg, name) => nbd.unixUri.replace("{resourceGroup}", rg).replace("{diskName}", name);

  // The job of an operation: the Azure-AsyncOperation's last segment →
  // backupOperations/{id} → jobId, waited for as `az backup job wait` does.
  const asyncOp = {};
  const capture = { onResponse: (raw) => { asyncOp.url ??= raw.headers.get("azure-asyncoperation"); } };
  const jobOf = async () => {
    const op = asyncOp.url.split("?")[0].split("/").pop();
    asyncOp.url = undefined;
    const status = await bk.backupOperationStatuses.get(VAULT, RG, op);
    assert.equal(status.status, "Succeeded");
    for (;;) {
      const job = await bk.jobDetails.get(VAULT, RG, status.properties.jobId);
      if (!["InProgress", "Cancelling"].includes(job.properties.status)) return job;
      await sleep(100);
    }
  };

  assert.ok(qemuIo(disk(RG, `${VM}_DataDisk_0`), "write -P 0xa1 0 2M").ok);
  await bk.backups.trigger(VAULT, RG, "Azure", CONTAINER, ITEM, { properties: { objectType: "IaasVMBackupRequest" } }, capture);
  const backupJob = await jobOf();
  assert.equal(backupJob.properties.status, "Completed");
  assert.deepEqual(backupJob.properties.extendedInfo.tasksList.map((t) => t.taskId), ["Take Snapshot", "Transfer data to vault"]);
  // Written after the backup: not in the point.
  assert.ok(qemuIo(disk(RG, `${VM}_DataDisk_0`), "write -P 0xb2 0 2M").ok);

  const points = [];
  for await (const p of bk.recoveryPoints.list(VAULT, RG, "Azure", CONTAINER, ITEM)) points.push(p);
  assert.equal(points.length, 1);
  assert.deepEqual(points[0].properties.recoveryPointTierDetails.map((t) => t.type), ["InstantRP", "HardenedRP"]);

  await bk.restores.beginTriggerAndWait(VAULT, RG, "Azure", CONTAINER, ITEM, points[0].name, { properties: {
    objectType: "IaasVMRestoreRequest", recoveryPointId: points[0].name, recoveryType: "RestoreDisks",
    sourceResourceId: vm.id, storageAccountId: staging.id, region: "eastus", restoreDiskLunList: [0],
    targetResourceGroupId: `/subscriptions/${sub}/resourceGroups/${RG}`,
  } }, { ...poll, ...capture });
  const restoreJob = await jobOf();
  assert.equal(restoreJob.properties.status, "Completed");
  assert.equal(restoreJob.properties.operation, "Restore");
  const restored = `${VM}_DataDisk_0-${points[0].name.slice(-8)}`;
  const check = qemuIo(disk(RG, restored), "read -P 0xa1 0 2M");
  assert.ok(check.ok, check.out);

  // Stop protection and delete the data: soft-deleted, kept 14 days.
  await bk.protectedItems.delete(VAULT, RG, "Azure", CONTAINER, ITEM);
  const left = await bk.protectedItems.get(VAULT, RG, "Azure", CONTAINER, ITEM);
  assert.equal(left.properties.isScheduledForDeferredDelete, true);
});
