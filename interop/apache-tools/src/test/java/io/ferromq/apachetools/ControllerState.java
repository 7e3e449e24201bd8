package io.ferromq.apachetools;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.apache.rocketmq.remoting.protocol.body.BrokerReplicasInfo;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/** A broker group as a controller sees it, read through Apache's admin API. */
final class ControllerState {

    private ControllerState() {
    }

    /**
     * The controller's view of {@code brokerName} (CONTROLLER_GET_SYNC_STATE_DATA, code 1006), or
     * null; {@code last[0]} describes the answer or the error.
     */
    static BrokerReplicasInfo.ReplicasInfo replicas(DefaultMQAdminExt admin, String ctl, String brokerName,
                                                    String[] last) {
        try {
            BrokerReplicasInfo all = admin.getInSyncStateData(ctl, List.of(brokerName));
            BrokerReplicasInfo.ReplicasInfo r = all.getReplicasInfoTable().get(brokerName);
            last[0] = r == null ? "no entry for " + brokerName + " in " + all.toJson()
                : "master " + r.getMasterBrokerId() + "@" + r.getMasterAddress() + " epoch " + r.getMasterEpoch()
                    + ", in sync " + describe(r.getInSyncReplicas()) + " (set epoch " + r.getSyncStateSetEpoch()
                    + "), not in sync " + describe(r.getNotInSyncReplicas());
            return r;
        } catch (Exception e) {
            last[0] = e.toString();
            return null;
        }
    }

    /** The addresses of the replicas the controller considers alive. */
    static Set<String> aliveAddresses(List<BrokerReplicasInfo.ReplicaIdentity> ids) {
        Set<String> out = new HashSet<>();
        if (ids != null) {
            for (BrokerReplicasInfo.ReplicaIdentity id : ids) {
                if (Boolean.TRUE.equals(id.getAlive())) {
                    out.add(id.getBrokerAddress());
                }
            }
        }
        return out;
    }

    private static String describe(List<BrokerReplicasInfo.ReplicaIdentity> ids) {
        List<String> out = new ArrayList<>();
        if (ids != null) {
            for (BrokerReplicasInfo.ReplicaIdentity id : ids) {
                out.add(id.getBrokerId() + "@" + id.getBrokerAddress() + (Boolean.TRUE.equals(id.getAlive()) ? "" : "(dead)"));
            }
        }
        return out.toString();
    }
}
