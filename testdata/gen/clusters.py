"""One moment of a cluster for testdata/clusters/ (make-clusters.sh): the
objects a DR sweep reads, written into a real etcd as kube-apiserver stores
them (k8senc.py): the kube-system Namespace with the cluster's UID, kubeadm's
kubeadm-config ConfigMap with its kubernetesVersion, and the node Leases
renewed at RENEW (Unix seconds), plus one Secret encrypted with aescbc under
the key "shared" (the same in both clusters: key-shared-across-clusters; see
config.yaml). The caller snapshots etcd right after.

    python3 clusters.py --port PORT --uid UID --version VERSION --renew SECONDS [--openshift]

--openshift writes the way an OpenShift cluster stores it instead: under
/kubernetes.io, no kubeadm-config (the version is in the JSON-stored Node's
kubeletVersion), and no Leases: Events at RENEW are the newest times.
"""
import argparse

import k8senc as k

SHARED_KEY = bytes(range(100, 132))  # config.yaml holds it (base64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--uid", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--renew", type=int, required=True)
    ap.add_argument("--openshift", action="store_true")
    a = ap.parse_args()
    etcd = k.Etcd(a.port)
    if a.openshift:
        return openshift(etcd, a)
    P = "/registry"
    etcd.put(f"{P}/namespaces/kube-system", k.namespace_pb("kube-system", uid=a.uid))
    etcd.put(f"{P}/namespaces/kube-node-lease", k.namespace_pb("kube-node-lease"))
    kubeadm = f"apiServer: {{}}\nkind: ClusterConfiguration\nkubernetesVersion: {a.version}\nnetworking: {{}}\n"
    etcd.put(f"{P}/configmaps/kube-system/kubeadm-config",
             k.configmap_pb("kubeadm-config", "kube-system", {"ClusterConfiguration": kubeadm}))
    for i, node in enumerate(["cp-1", "worker-1", "worker-2"]):
        # Kubelets renew a few seconds apart: the newest renewal is RENEW.
        renew = a.renew - 4 * i
        etcd.put(f"{P}/leases/kube-node-lease/{node}", k.lease_pb(node, "kube-node-lease", node, renew))
    secret = k.secret_pb("app", "default", {"token": b"not-a-real-token"})
    etcd.put(f"{P}/secrets/default/app", k.aescbc("shared", SHARED_KEY, secret))


def openshift(etcd, a):
    P = "/kubernetes.io"
    etcd.put(f"{P}/namespaces/kube-system", k.namespace_pb("kube-system", uid=a.uid))
    node = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "master-0"},
            "status": {"nodeInfo": {"kubeletVersion": a.version}}}
    etcd.put(f"{P}/minions/master-0", k._json(node))
    for i in range(3):
        # Events: the newest was written at RENEW (creationTimestamp, as apiservers set it).
        name = f"master-0.{i:04x}"
        etcd.put(f"{P}/events/default/{name}",
                 k.event_pb(name, "default", "NodeReady", "ready", created=a.renew - 60 * i))
    secret = k.secret_pb("app", "default", {"token": b"not-a-real-token"})
    etcd.put(f"{P}/secrets/default/app", k.aescbc("shared", SHARED_KEY, secret))


if __name__ == "__main__":
    main()
